/**
 * Where the compiled metadata server entry (dist/metaserver/server/server-main.js)
 * is, for whoever starts members as child processes (cluster up, benches,
 * tests), from compiled code or from TypeScript sources run by jest. Owns
 * nothing else.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function metaServerMainPath(): string {
  // From dist/ this file sits beside server-main.js; from sources (jest), dist/ is two folders up.
  const candidate = __filename.endsWith('.ts')
    ? path.resolve(__dirname, '..', '..', 'dist', 'metaserver', 'server', 'server-main.js')
    : path.join(__dirname, 'server-main.js');
  if (!fs.existsSync(candidate)) throw new Error(`${candidate} is missing; run \`npm run build\` (tsc -p .) first`);
  return candidate;
}
