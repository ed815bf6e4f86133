/**
 * The fleet page in a real browser (docs/FLEET-PAGE.md; issue 17): Debian's Chromium, headless, driven by
 * playwright-core (no browser download). Load the page on a lab's fleet, filter, open a NIC, see an alert arrive live
 * after `host nic-1 hang`, run an action: refused without the daemon's credential, done with it. Real processes on
 * 127.0.182.0/24, ports 18220-18229; the browser and every process are stopped in after().
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Browser, Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../../lib/chromium.js';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

// The page's own global, in the functions page.waitForFunction runs in the browser (no DOM types in this project).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;

const PAGE = 'http://127.0.182.1:18222/';

describe('e2e fleet page in Chromium: load, filter, a NIC, a live alert, an action with and without the credential', function () {
  this.timeout(120_000);
  const lab = new Lab('fleet-browser');
  let browser: Browser | null = null;
  let page: Page;
  let token = '';

  before(async function () {
    if (!existsSync(CHROMIUM)) this.skip(); // apt-get install chromium (.ci/run installs it)
    await lab.startEmulator(['--nics', '4', '--first-address', '127.0.182.30', '--control', '127.0.182.1:18220']);
    await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file]);
    const d = await StationDaemon.start(lab, ['--poll-interval', '200', '--listen', '127.0.182.1:18221', '--control', '127.0.182.1:18222']);
    token = d.control.token!;
    await waitFor('every NIC polled', async () => (await d.status()).nics.filter((n: { host: string }) => n.host === 'S0').length === 4, 15_000, 50);
    browser = await launchChromium();
    page = await browser.newPage();
    page.setDefaultTimeout(10_000);
  });
  after(async () => {
    await browser?.close();
    await stopAllStations();
    await lab.cleanup();
  });

  it('shows the lab\'s 4 NICs at a glance and in the list, live', async () => {
    await page.goto(PAGE);
    await page.waitForFunction(() => document.querySelectorAll('#nics tbody tr').length === 4);
    assert.equal(await page.textContent('#g-nics'), '4');
    await page.waitForSelector('#live:not(.off)');
    assert.equal(await page.textContent('#cred-state'), 'view only');
    assert.deepEqual(await page.$$eval('#nics tbody tr td:first-child', (tds) => tds.map((t) => t.textContent)), ['nic-1', 'nic-2', 'nic-3', 'nic-4']);
    await page.waitForSelector('#g-chart .uplot'); // uPlot, served from node_modules
  });

  it('filters the list by search and by host state', async () => {
    await page.fill('#f-q', 'nic-3');
    await page.waitForFunction(() => document.querySelectorAll('#nics tbody tr').length === 1);
    assert.equal(await page.textContent('#nics tbody tr td:first-child'), 'nic-3');
    await page.fill('#f-q', '');
    await page.selectOption('#f-host', 's5');
    await page.waitForFunction(() => document.querySelectorAll('#nics tbody tr').length === 0);
    assert.equal(await page.textContent('#f-count'), 'no NIC matches');
    await page.selectOption('#f-host', '');
    await page.waitForFunction(() => document.querySelectorAll('#nics tbody tr').length === 4);
  });

  it('opens a NIC: host state, its SA, the command log with its audit', async () => {
    await page.click('#nics tbody tr[data-nic="nic-1"] td:nth-child(2)');
    await page.waitForSelector('#nic-id');
    assert.equal(await page.textContent('#nic-id'), 'nic-1');
    assert.match((await page.textContent('#nic-host'))!, /S0/);
    assert.match((await page.textContent('#nic-view'))!, /active/);
    assert.match((await page.textContent('#audit'))!, /audit ok/);
  });

  it('an alert appears on the page within 1 s of `host nic-1 hang`', async () => {
    const t0 = performance.now();
    await lab.host('nic-1', 'hang');
    await page.waitForFunction(() => [...document.querySelectorAll('#nic-alerts li')].some((li) => li.textContent!.includes('os-hang')), undefined, { timeout: 5000 });
    const ms = performance.now() - t0;
    assert.ok(ms <= 1000, `the alert showed after ${ms.toFixed(0)} ms`);
  });

  it('an action is refused without the daemon\'s credential, and done with it', async () => {
    await page.click('button[data-action="power-cycle"]');
    await page.waitForFunction(() => /refused/.test(document.getElementById('action-result')!.textContent!));
    assert.match((await page.textContent('#action-result'))!, /E_AUTH/);
    await page.fill('#cred-token', token);
    await page.click('#cred-set');
    assert.equal(await page.textContent('#cred-state'), 'can act');
    await page.click('button[data-action="power-cycle"]');
    await page.waitForFunction(() => /power-cycle: done/.test(document.getElementById('action-result')!.textContent!));
    await page.waitForFunction(() => [...document.querySelectorAll('#nic-view td')].some((td) => td.textContent === 'power-cycle'));
  });

  it('an address with #token= gives the page the credential and leaves the address bar', async () => {
    const p2 = await browser!.newPage();
    try {
      await p2.goto(`${PAGE}#token=${token}`);
      await p2.waitForFunction(() => document.getElementById('cred-state')!.textContent === 'can act');
      assert.equal(new URL(p2.url()).hash, '');
    } finally {
      await p2.close();
    }
  });
});
