/**
 * Where the .proto files are at run time. They stay in proto/ at the
 * repository root; compiled code runs from dist/, one level further down.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function protoPath(fileName: string): string {
  const candidates = [path.join(__dirname, fileName), path.join(__dirname, '..', '..', 'proto', fileName)];
  const found = candidates.find((candidate) => fs.existsSync(candidate));
  if (found === undefined) throw new Error(`cannot find proto/${fileName} (looked at ${candidates.join(' and ')})`);
  return found;
}
