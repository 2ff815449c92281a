/**
 * vitest global setup: after the whole run, say so when the browser tests were skipped and how to
 * run them (one line at the end of `npm test`, where a user looks; the skipped suite itself only
 * shows as "skipped" in the list).
 */
import { browserDecision, skipNotice } from './helpers/browser.js';

export default function setup(): () => void {
  return () => {
    const d = browserDecision();
    if (d.skip) process.stderr.write(`\n${skipNotice(d)}\n`);
  };
}
