/**
 * Debian's Chromium, headless, driven by playwright-core (a devDependency: no browser download), as the fleet page's
 * browser test, its bench section and the screenshot script start it (docs/FLEET-PAGE.md). Loaded only by those.
 */
import { chromium, type Browser } from 'playwright-core';

/** Where Debian's `chromium` package puts the browser (CHROMIUM_PATH overrides). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Headless Chromium; as root it needs --no-sandbox (its sandbox refuses to run as root). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [], timeout: 20_000 });
}
