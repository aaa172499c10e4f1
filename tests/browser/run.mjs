// Drives Debian's Chromium through one browser scenario against a running
// gamenet-signaling server that serves the test page.
//
//   node run.mjs <two-tabs|native-echo|tab-close> <http://host:port> [artifact-dir]
//
// Prints progress lines and exits non-zero when an expectation fails.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const [scenario, base, artifacts = 'artifacts'] = process.argv.slice(2);
const APP = 'e2e';
const log = (...a) => console.log(...a);

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
} catch (e) {
  log(`scenario failed: ${e.stack ?? e}`);
  await browser.close();
  process.exit(1);
}
