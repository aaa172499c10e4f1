// Drives Debian's Chromium through one scenario of the example game (arena)
// served by a running gamenet-signaling server.
//
//   node game.mjs <two-tabs|lobby-three|host-leaves|cross-play|hidden-3s|hidden-20s|rtt> <http://host:port> [artifact-dir]
//
// Tabs are 960x640 unless VIEWPORT=<w>x<h> says otherwise. `rtt` takes the
// tabs' RTT apart: both drawing, then b's frames held (b's page answers from
// its driver alone, as a hidden tab's does).
// Prints progress lines and exits non-zero when an expectation fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [scenario, base, artifacts = 'artifacts'] = process.argv.slice(2);
const log = (...a) => console.log(...a);

function expect(cond, message) {
  if (!cond) throw new Error(`expectation failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    // WebGL2 without a GPU: ANGLE on SwiftShader.
    '--use-angle=swiftshader', '--enable-unsafe-swiftshader', '--ignore-gpu-blocklist',
  ],
});

// What a hidden tab does to a page, which headless Chromium never does by
// itself: while `window.__hide.held`, requestAnimationFrame callbacks wait
// (they run again when shown) and timers fire at most once a second. Message
// events (WebRTC, WebSocket) still arrive, as in a hidden tab.
const HIDING = () => {
  const raf = window.requestAnimationFrame.bind(window);
  const timeout = window.setTimeout.bind(window);
  const interval = window.setInterval.bind(window);
  const hide = { held: false, waiting: [] };
  window.__hide = hide;
  window.requestAnimationFrame = cb => {
    if (hide.held) {
      hide.waiting.push(cb);
      return 0;
    }
    return raf(cb);
  };
  window.setTimeout = (cb, ms, ...args) =>
    timeout(cb, hide.held ? Math.max(ms ?? 0, 1000) : ms, ...args);
  window.setInterval = (cb, ms, ...args) =>
    interval(cb, hide.held ? Math.max(ms ?? 0, 1000) : ms, ...args);
  window.__show = () => {
    hide.held = false;
    const waiting = hide.waiting.splice(0);
    for (const cb of waiting) raf(cb);
  };
};

async function openTab(name, room) {
  return openPage(name, `room=${room}&players=2`);
}

// A tab of the game at `index.html?<query>`, `viewport` (`<w>x<h>`) in size.
async function openPage(name, query, viewport = process.env.VIEWPORT ?? '960x640') {
  // One context per tab, as two players on two machines.
  const [width, height] = viewport.split('x').map(Number);
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  await page.addInitScript(HIDING);
  await page.addInitScript(PIXELS);
  page.on('console', m => {
    // TAB_CONSOLE=all shows every console line of the tabs (the game's
    // tracing output), for reading a failure.
    const all = process.env.TAB_CONSOLE === 'all';
    if (all || m.type() === 'error' || m.type() === 'warning') log(`[${name}] ${m.text()}`);
  });
  page.on('pageerror', e => log(`[${name}] page error: ${e}`));
  await page.goto(`${base}/index.html?${query}`);
  await page.waitForFunction(() => window.game !== undefined, null, { timeout: 60_000 });
  return page;
}

const state = page => page.evaluate(() => window.game.state());

async function waitState(page, test, what, timeout = 60_000) {
  const until = Date.now() + timeout;
  for (;;) {
    const s = await state(page);
    if (test(s)) return s;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

// In a tab: `window.__pixels(b64)` decodes a PNG (a screenshot of the tab)
// to its RGBA bytes, width and height, for the checks below.
const PIXELS = () => {
  window.__pixels = async b64 => {
    const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
    const bitmap = await createImageBitmap(blob);
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const { width, height } = bitmap;
    return { data: ctx.getImageData(0, 0, width, height).data, width, height };
  };
};

// Saves a screenshot and returns how many distinct colours it has (a blank or
// single-colour page has one or two).
async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const png = await page.screenshot({ path: `${artifacts}/${name}.png` });
  return page.evaluate(async b64 => {
    const { data } = await window.__pixels(b64);
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4 * 7) {
      colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    }
    return colours.size;
  }, png.toString('base64'));
}

const running = s => s.running && s.connected >= 2;

const median = xs => {
  const sorted = [...xs].sort((x, y) => x - y);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN;
};

// The tabs' RTT to each other as their overlays show it and how many frames
// they draw, sampled every 250 ms for 3 s: "a <rtt> ms <fps>/s, b ...".
async function linkFigures(a, b) {
  const samples = [[], []];
  for (let i = 0; i < 12; i++) {
    const both = await Promise.all([state(a), state(b)]);
    both.forEach((s, k) => samples[k].push(s));
    await new Promise(r => setTimeout(r, 250));
  }
  const raf = await Promise.all([a, b].map(rafRate));
  return samples.map((ss, k) =>
    `${'ab'[k]} rtt median ${median(ss.flatMap(s => s.rtt_ms))} ms ` +
    `(max ${Math.max(...ss.flatMap(s => s.rtt_ms))}), game updates ${median(ss.map(s => s.fps))}/s, ` +
    `animation frames ${raf[k]}/s`,
  ).join('; ');
}

// Animation frames the page gets in a second.
const rafRate = page => page.evaluate(() => new Promise(done => {
  let n = 0;
  const t0 = performance.now();
  const tick = () => {
    n++;
    if (performance.now() - t0 < 1000) requestAnimationFrame(tick); else done(n);
  };
  requestAnimationFrame(tick);
}));

// In a tab: notes (`window.__seen`) when the game first shows the player in
// `slot` moved by half a pixel or more in direction `sign`, looking every
// 4 ms (the game publishes its state once per update, which it then draws).
const WATCH_MOVE = ([slot, sign]) => {
  const x = () => window.game.state().positions.find(p => p[0] === slot)?.[1];
  const from = x();
  window.__seen = null;
  const look = setInterval(() => {
    const now = x();
    if (now !== undefined && (now - from) * sign >= 0.5) {
      window.__seen = Date.now();
      clearInterval(look);
    }
  }, 4);
};

// Both tabs hold the same confirmed checksum for a frame past `after` on a.
async function sameChecksumAfter(a, b, after, timeout = 60_000) {
  const { frame } = await waitState(a, s => s.frame !== null && s.frame > after,
    `a confirmed frame past ${after}`, timeout);
  const until = Date.now() + timeout;
  for (;;) {
    const [ca, cb] = await Promise.all([
      a.evaluate(f => window.game.checksum(f), frame),
      b.evaluate(f => window.game.checksum(f), frame),
    ]);
    if (ca !== null && cb !== null) {
      log(`frame ${frame}: checksum a ${ca}, b ${cb}`);
      expect(ca === cb, 'both tabs hold the same checksum');
      return frame;
    }
    expect(Date.now() < until, `both tabs reach frame ${frame}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

// Whether a screenshot of the tab shows both goals whole: the left (blue)
// goal's colour in the left tenth of the page and the right (red) one's in
// the right tenth, each over at least a sixth of the page's height.
async function goalsShown(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const png = await page.screenshot({ path: `${artifacts}/${name}.png` });
  return page.evaluate(async b64 => {
    const { data, width, height } = await window.__pixels(b64);
    const near = (i, [r, g, b]) =>
      Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40;
    // Rows where the colour shows within the band of columns.
    const rows = (from, to, colour) => {
      let n = 0;
      for (let y = 0; y < height; y++) {
        for (let x = from; x < to; x++) {
          if (near((y * width + x) * 4, colour)) { n++; break; }
        }
      }
      return n;
    };
    const band = Math.floor(width / 10);
    const left = rows(0, band, [64, 140, 255]);
    const right = rows(width - band, width, [255, 89, 77]);
    return { width, height, left, right, whole: left > height / 6 && right > height / 6 };
  }, png.toString('base64'));
}

// Every tab holds the same confirmed checksum for a frame past `after` on
// the first tab; returns that frame.
async function sameChecksumAll(tabs, after, timeout = 90_000) {
  const { frame } = await waitState(tabs[0], s => s.frame !== null && s.frame > after,
    `the first tab confirmed frame past ${after}`, timeout);
  const until = Date.now() + timeout;
  for (;;) {
    const sums = await Promise.all(tabs.map(t => t.evaluate(f => window.game.checksum(f), frame)));
    if (sums.every(c => c !== null)) {
      log(`frame ${frame}: checksums ${sums.join(', ')}`);
      expect(sums.every(c => c === sums[0]), 'every tab holds the same checksum');
      return frame;
    }
    expect(Date.now() < until, `every tab reaches frame ${frame}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

try {
  if (scenario === 'lobby-three') {
    // a creates a lobby for three: its code comes back from the server and
    // goes into the address bar as the link to share.
    const a = await openPage('a', 'players=3&name=Friday%20night');
    const made = await waitState(a, s => !s.choosing && s.room.length === 6, 'a created a lobby');
    const code = made.room;
    log(`a created lobby ${code} for ${made.players} players, link ${made.link}`);
    expect(made.players === 3, 'the lobby is for three');
    expect(made.link.endsWith(`?lobby=${code}`), 'the link carries the code');
    expect(a.url().endsWith(`?lobby=${code}`), "the code is in a's address bar");
    await new Promise(r => setTimeout(r, 1000));
    const lobbyColours = await screenshot(a, 'arena-lobby-code');
    expect(lobbyColours > 8, 'the lobby screenshot is not blank');
    // b joins by code, as from the link.
    const b = await openPage('b', `lobby=${code}`);
    await waitState(b, s => !s.choosing && s.room === code, 'b joined the lobby by code');
    log(`b joined lobby ${code} by code`);
    // c picks it from the list of open games.
    // c's tab is small: the field fits it, both goals in view.
    const c = await openPage('c', 'pick', '640x420');
    const listing = await waitState(c, s => s.lobbies.some(l => l[0] === code),
      'c lists the lobby');
    const index = listing.lobbies.findIndex(l => l[0] === code);
    log(`c lists ${JSON.stringify(listing.lobbies)}; picks #${index + 1}`);
    expect(listing.lobbies[index][1] === 'Friday night' && listing.lobbies[index][2] === 2 &&
      listing.lobbies[index][3] === 3, 'the list names the lobby and its 2 of 3 players');
    await c.locator('#arena').click();
    await c.focus('#arena');
    await c.keyboard.press(`Digit${index + 1}`);
    await waitState(c, s => !s.choosing && s.room === code, 'c joined the lobby from the list');
    const three = s => s.running && s.connected === 3;
    const states = await Promise.all([
      waitState(a, three, 'a: 3 players connected', 90_000),
      waitState(b, three, 'b: 3 players connected', 90_000),
      waitState(c, three, 'c: 3 players connected', 90_000),
    ]);
    const slots = states.map(s => s.slot);
    log(`3 players connected in lobby ${code}, slots ${slots.join(', ')}`);
    expect(new Set(slots).size === 3 && slots.every(s => s !== null), 'three different slots');
    const frame = await sameChecksumAll([a, b, c], 120);
    log(`all three in step at frame ${frame}`);
    const colours = await screenshot(a, 'arena-three');
    expect(colours > 8, 'the screenshot is not blank');
    const goals = await goalsShown(c, 'arena-small-tab');
    log(`c's 640x420 tab shows the goals over ${goals.left} and ${goals.right} of ${goals.height} rows`);
    expect(goals.whole, 'both goals in view in a small tab');
  } else if (scenario === 'two-tabs') {
    const a = await openTab('a', 'duel');
    // Alone in the room, a shows the lobby.
    const lobby = await waitState(a, s => s.connected === 1 && s.room === 'duel', 'a in the lobby');
    // The page asked its server for ICE servers and uses the server's own STUN.
    log(`a uses ICE servers ${JSON.stringify(lobby.ice)}`);
    expect(lobby.ice.some(url => url === `stun:${new URL(base).hostname}:3478`),
      'the STUN server from /api/ice');
    await new Promise(r => setTimeout(r, 1000));
    const lobbyColours = await screenshot(a, 'arena-lobby');
    log(`a waits in the lobby of room ${lobby.room} (${lobby.link}), ${lobbyColours} colours`);
    expect(lobbyColours > 8, 'the lobby screenshot is not blank');
    const b = await openTab('b', 'duel');
    const [sa, sb] = await Promise.all([
      waitState(a, running, 'tab a: 2 players connected'),
      waitState(b, running, 'tab b: 2 players connected'),
    ]);
    log(`a: ${sa.connected} players connected, slot ${sa.slot}`);
    log(`b: ${sb.connected} players connected, slot ${sb.slot}`);
    expect(sa.slot !== sb.slot, 'the tabs play different slots');
    log(`rtt and frame rate: ${await linkFigures(a, b)}`);
    // A holds a key; B sees A's player move that way. Each tab notes when its
    // game first shows the player moved; the key press is timed where the
    // page receives it (one clock: the same machine).
    const slot = sa.slot;
    const at = s => s.positions.find(p => p[0] === slot);
    // Running, the session is; its first frame (which spawns the players) may
    // not have run yet.
    const before = at(await waitState(b, s => at(s) !== undefined, "b has a's player"));
    await waitState(a, s => at(s) !== undefined, "a has its player");
    const key = slot % 2 === 0 ? 'ArrowRight' : 'ArrowLeft';
    const sign = slot % 2 === 0 ? 1 : -1;
    await a.locator('#arena').click();
    await a.focus('#arena');
    await a.evaluate(() => {
      window.__down = null;
      addEventListener('keydown', () => { window.__down ??= Date.now(); }, { capture: true });
    });
    await Promise.all([a, b].map(t => t.evaluate(WATCH_MOVE, [slot, sign])));
    const pressed = Date.now();
    await a.keyboard.down(key);
    let moved = 0;
    // Held until b sees the player 50 px on, at most 15 s.
    while (moved <= 50 && Date.now() - pressed < 15_000) {
      await new Promise(r => setTimeout(r, 100));
      moved = (at(await state(b))[1] - before[1]) * sign;
    }
    await a.keyboard.up(key);
    const down = await a.evaluate(() => window.__down);
    const [seenA, seenB] = await Promise.all([a, b].map(t => t.evaluate(() => window.__seen)));
    log(`b sees a's player (slot ${slot}) move ${moved.toFixed(0)} px ` +
      `${Date.now() - pressed} ms after ${key} went down`);
    expect(down !== null && seenA !== null && seenB !== null,
      `both tabs showed the move (key down ${down}, shown in a ${seenA}, in b ${seenB})`);
    log(`key press to the move shown: in a ${seenA - down} ms, in b ${seenB - down} ms`);
    expect(moved > 50, "a's key press moves a's player as b sees it");
    await sameChecksumAfter(a, b, 120);
    // The overlay, in a's screenshot.
    await a.keyboard.press('F3');
    await new Promise(r => setTimeout(r, 700));
    const colours = [await screenshot(a, 'arena-tab-a'), await screenshot(b, 'arena-tab-b')];
    log(`screenshots: ${colours[0]} and ${colours[1]} colours`);
    expect(colours.every(c => c > 8), 'screenshots are not blank');
    // The overlay plugin's figures, read back through the page hook.
    const shown = await waitState(a, s => s.overlay.shown && s.overlay.readings.peers >= 1 &&
      s.overlay.readings.rtt_ms > 0, 'the overlay shows in a, with a peer and its RTT');
    log(`overlay in a: ${JSON.stringify(shown.overlay)}`);
    expect(!(await state(b)).overlay.shown, 'the overlay shows in a only');
    expect(shown.overlay.readings.frames_per_sec > 0, 'the overlay shows the frame rate');
    expect(shown.overlay.readings.desyncs === 0, 'the overlay shows no desync');
    // F4 switches the link conditioner to its next preset, and round to off.
    await a.keyboard.press('F4');
    await waitState(a, s => s.overlay.link === 'wifi', 'F4 sets the wifi preset');
    for (const next of ['mobile', 'bad', 'off']) {
      await a.keyboard.press('F4');
      await waitState(a, s => s.overlay.link === next, `F4 sets ${next}`);
    }
    await a.keyboard.press('F3');
    await waitState(a, s => !s.overlay.shown, 'F3 hides the overlay');
  } else if (scenario === 'host-leaves') {
    const a = await openTab('a', 'host');
    const b = await openTab('b', 'host');
    await Promise.all([waitState(a, running, 'a running'), waitState(b, running, 'b running')]);
    // Mid-game: a couple of seconds in, the ball on both.
    await waitState(a, s => s.ball !== null && s.frame >= 120, 'a has the ball, frame 120');
    await waitState(b, s => s.ball !== null && s.frame >= 120, 'b has the ball, frame 120');
    const [sa, sb] = [await state(a), await state(b)];
    expect(sa.ball_owned !== sb.ball_owned, 'one tab owns the ball');
    const [owner, other] = sa.ball_owned ? [a, b] : [b, a];
    const score = (await state(other)).score;
    log(`the ball's owner leaves; the other tab had score ${JSON.stringify(score)}`);
    await owner.close();
    const took = await waitState(other, s => s.ball_owned && s.ball !== null,
      'the other tab takes the ball over', 15_000);
    const first = took.ball;
    await new Promise(r => setTimeout(r, 1000));
    const later = await state(other);
    log(`the other tab owns the ball: ${JSON.stringify(first)} -> ${JSON.stringify(later.ball)}, ` +
      `score ${JSON.stringify(later.score)}, ${later.connected} connected`);
    expect(later.ball !== null, 'the ball is still there');
    const moved = Math.hypot(later.ball[0] - first[0], later.ball[1] - first[1]);
    expect(moved > 1, 'the ball moves under its new owner');
    // The rollback game goes on for the one left: its confirmed frame moves
    // (once the leaver's disconnect is settled).
    const on = await waitState(other, s => s.frame > took.frame, 'the game goes on', 10_000);
    log(`confirmed frame ${took.frame} -> ${on.frame}`);
    expect(later.score !== null, 'the score is still there');
    expect(later.connected === 1, 'the owner is gone');
    const colours = await screenshot(other, 'arena-host-left');
    expect(colours > 8, 'the screenshot is not blank');
  } else if (scenario === 'hidden-3s' || scenario === 'hidden-20s') {
    const hold = scenario === 'hidden-3s' ? 3_000 : 20_000;
    const a = await openTab('a', scenario);
    const b = await openTab('b', scenario);
    await Promise.all([waitState(a, running, 'a running'), waitState(b, running, 'b running')]);
    const before = await waitState(b, s => s.frame !== null && s.frame >= 120, 'b at frame 120');
    log(`b's frames stop for ${hold} ms at confirmed frame ${before.frame}`);
    await b.evaluate(() => { window.__hide.held = true; });
    await new Promise(r => setTimeout(r, hold));
    const during = await state(a);
    log(`a meanwhile: confirmed frame ${during.frame}, ${during.connected} connected, ` +
      `status "${during.status}"`);
    await b.evaluate(() => window.__show());
    const shown = Date.now();
    const after = Math.max(during.frame ?? 0, before.frame) + 60;
    let frame;
    let back;
    try {
      frame = await sameChecksumAfter(a, b, after);
      back = Date.now() - shown;
    } finally {
      for (const [name, tab] of [['a', a], ['b', b]]) {
        const s = await state(tab);
        log(`${name} (${s.id}): status "${s.status}", events ${JSON.stringify(s.events)}`);
      }
    }
    log(`both tabs in step at frame ${frame}, ${back} ms after b was shown`);
    // One rejoin (or one call-off), not a long tug between the two.
    expect(back < 15_000, 'in step within 15 s of b being shown');
    const [sa, sb] = [await state(a), await state(b)];
    expect(sa.connected >= 2 && sb.connected >= 2, 'both tabs see each other');
    expect(sa.slot !== sb.slot && sa.slot !== null && sb.slot !== null, 'both still play');
  } else if (scenario === 'rtt') {
    const a = await openTab('a', 'rtt');
    await waitState(a, s => s.connected === 1, 'a in the lobby');
    await new Promise(r => setTimeout(r, 2000));
    log(`a alone in the lobby: animation frames ${await rafRate(a)}/s`);
    const b = await openTab('b', 'rtt');
    await Promise.all([waitState(a, running, 'a running'), waitState(b, running, 'b running')]);
    await new Promise(r => setTimeout(r, 3000));
    log(`both drawing: ${await linkFigures(a, b)}`);
    await b.evaluate(() => { window.__hide.held = true; });
    await new Promise(r => setTimeout(r, 3000));
    const held = [];
    for (let i = 0; i < 12; i++) {
      held.push((await state(a)).rtt_ms);
      await new Promise(r => setTimeout(r, 250));
    }
    log(`b's frames held: a rtt median ${median(held.flat())} ms, ` +
      `a's animation frames ${await rafRate(a)}/s`);
    await b.evaluate(() => window.__show());
  } else if (scenario === 'cross-play') {
    // The native peer is run by the Rust test, which compares checksums.
    const tab = await openTab('tab', 'cross');
    await waitState(tab, running, 'the tab plays the native peer', 90_000);
    const until = Date.now() + 12_000;
    let last = null;
    while (Date.now() < until) {
      const s = await state(tab);
      if (s.frame !== null && s.frame !== last) {
        log(`tab frame ${s.frame} checksum ${s.checksum}`);
        last = s.frame;
      }
      await new Promise(r => setTimeout(r, 250));
    }
    const colours = await screenshot(tab, 'arena-cross-play');
    expect(colours > 8, 'the screenshot is not blank');
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  log('scenario passed');
  await browser.close();
} catch (e) {
  log(`scenario failed: ${e.stack ?? e}`);
  await browser.close();
  process.exit(1);
}
