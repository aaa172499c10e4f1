// Drives Debian's Chromium through one browser scenario against a running
// gamenet-signaling server that serves the test page.
//
//   node run.mjs <two-tabs|native-echo|tab-close|rogue-signals> <http://host:port> [artifact-dir]
//
// Prints progress lines and exits non-zero when an expectation fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

const [scenario, base, artifacts = 'artifacts'] = process.argv.slice(2);
const APP = 'e2e';
const log = (...a) => console.log(...a);

// Lines the test writes to this script's standard input.
const told = new Set();
const input = createInterface({ input: process.stdin });
input.on('line', l => told.add(l.trim()));

async function toldLine(line, timeout) {
  const end = Date.now() + timeout;
  while (!told.has(line)) {
    if (Date.now() > end) throw new Error(`the test did not say ${line}`);
    await new Promise(r => setTimeout(r, 100));
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(`expectation failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
const context = await browser.newContext();

async function openTab(name, room) {
  const page = await context.newPage();
  page.on('console', m => log(`[${name}] ${m.text()}`));
  page.on('pageerror', e => log(`[${name}] page error: ${e}`));
  await page.goto(`${base}/index.html`);
  await page.waitForFunction(() => window.gamenetReady === true, null, { timeout: 30_000 });
  await page.evaluate(([room, app]) => window.startMesh(room, app), [room, APP]);
  return page;
}

async function waitJoined(page, n) {
  await page.waitForFunction(n => window.state.joined.length >= n, n, { timeout: 30_000 });
  return page.evaluate(() => window.state.joined.slice());
}

async function received(page, peer, channel, n, timeout = 30_000) {
  await page.waitForFunction(([p, c, n]) => (window.state.received[p]?.[c]?.length ?? 0) >= n,
    [peer, channel, n], { timeout }).catch(() => {});
  return page.evaluate(([p, c]) => window.state.received[p]?.[c] ?? [], [peer, channel]);
}

function inOrder(messages, prefix, count) {
  return messages.length === count && messages.every((m, i) => m === `${prefix}${i}`);
}

async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: `${artifacts}/${name}.png` });
}

try {
  if (scenario === 'two-tabs') {
    const a = await openTab('a', 'tabs');
    const b = await openTab('b', 'tabs');
    const [bId] = await waitJoined(a, 1);
    const [aId] = await waitJoined(b, 1);
    log(`joined: a=${aId} b=${bId}`);
    const N = 1000;
    await Promise.all([
      a.evaluate(([p, n]) => window.sendMany(p, n, true, 'a'), [bId, N]),
      b.evaluate(([p, n]) => window.sendMany(p, n, true, 'b'), [aId, N]),
    ]);
    const atB = await received(b, aId, 'reliable', N);
    const atA = await received(a, bId, 'reliable', N);
    log(`reliable: a->b ${atB.length}/${N}, b->a ${atA.length}/${N}`);
    expect(inOrder(atB, 'a', N), 'tab b got all of a\'s reliable messages in order');
    expect(inOrder(atA, 'b', N), 'tab a got all of b\'s reliable messages in order');
    const U = 300;
    await Promise.all([
      a.evaluate(([p, n]) => window.sendMany(p, n, false, 'ua'), [bId, U]),
      b.evaluate(([p, n]) => window.sendMany(p, n, false, 'ub'), [aId, U]),
    ]);
    const uB = await received(b, aId, 'unreliable', U, 3_000);
    const uA = await received(a, bId, 'unreliable', U, 3_000);
    log(`unreliable: a->b ${uB.length}/${U}, b->a ${uA.length}/${U}`);
    expect(uB.length >= U * 0.9 && uA.length >= U * 0.9, 'at least 90% of unreliable messages arrive');
    expect(new Set(uB).size === uB.length && new Set(uA).size === uA.length, 'no unreliable duplicates');
    await a.waitForTimeout(300);
    await screenshot(a, 'two-tabs-a');
    await screenshot(b, 'two-tabs-b');
  } else if (scenario === 'native-echo') {
    const page = await openTab('tab', 'native');
    const [native] = await waitJoined(page, 1);
    log(`joined native peer ${native}`);
    const N = 500, U = 200;
    await page.evaluate(([p, n]) => window.sendMany(p, n, true, 'r'), [native, N]);
    await page.evaluate(([p, n]) => window.sendMany(p, n, false, 'u'), [native, U]);
    const rel = await received(page, native, 'reliable', N);
    const unrel = await received(page, native, 'unreliable', U, 3_000);
    log(`echoed back: reliable ${rel.length}/${N}, unreliable ${unrel.length}/${U}`);
    expect(inOrder(rel, 'r', N), 'every reliable message echoed in order');
    expect(unrel.length >= U * 0.9, 'at least 90% of unreliable messages echoed');
    await screenshot(page, 'native-echo');
  } else if (scenario === 'rogue-signals') {
    // The test's rogue clients signal this tab (and the native peer): first
    // signals that do not parse, then ones that parse but that the browser
    // rejects. The tab refuses the first before its WebRTC stack sees them
    // (a panic would abort the module) and keeps its link.
    const errors = [];
    const page = await openTab('tab', 'rogue');
    page.on('pageerror', e => errors.push(String(e)));
    const [native] = await waitJoined(page, 1);
    log(`joined native peer ${native}`);
    log(`tab is ${await page.evaluate(() => window.state.id)}`);
    await page.waitForFunction(() => window.state.refused.length >= 1, null, { timeout: 60_000 });
    const refused = await page.evaluate(() => window.state.refused.slice());
    log(`refused ${refused.map(r => r.peer).join(' ')}: ${refused[0].reason}`);
    // The test says when its rogues are done.
    await toldLine('rogues gone', 90_000);
    const N = 300;
    await page.evaluate(([p, n]) => window.sendMany(p, n, true, 'r'), [native, N]);
    const rel = await received(page, native, 'reliable', N);
    const st = await page.evaluate(() => ({ joined: window.state.joined, left: window.state.left, refused: window.state.refused }));
    log(`after the rogues: echoed ${rel.length}/${N}, joined ${st.joined.length}, left ${st.left.length}, refused ${st.refused.length}, page errors ${errors.length}`);
    expect(inOrder(rel, 'r', N), 'every reliable message echoed in order after the rogues');
    expect(st.joined.length === 1 && st.left.length === 0, 'the tab kept its one link and saw no rogue join');
    expect(errors.length === 0, `no page error: ${errors.join('; ')}`);
  } else if (scenario === 'tab-close') {
    const page = await openTab('tab', 'close');
    const [native] = await waitJoined(page, 1);
    log(`joined native peer ${native}`);
    await page.waitForTimeout(500);
    await page.close();
    log(`closed ${Date.now()}`);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  log('scenario passed');
  await browser.close();
  input.close();
} catch (e) {
  log(`scenario failed: ${e.stack ?? e}`);
  await browser.close();
  input.close();
  process.exit(1);
}
