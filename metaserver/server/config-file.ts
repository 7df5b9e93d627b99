/**
 * `handlefs server --config FILE`: a JSON file (README-config.md) turned into
 * the same flags the command line takes, so one parser (meta-server-config.ts
 * and raft's server-config.ts) decides every value; flags given on the command
 * line win over the file's; the keys of the retention and blocks sections are
 * flags too.
 * Owns reading, strict JSON (line:column, duplicate keys) and the
 * key → flag mapping. Must never accept an unknown key (a typo must not be
 * silently ignored), never open sockets or databases, and never decide a
 * default the flag parsers decide.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Node as JsonNode, ParseError, parseTree, printParseErrorCode } from 'jsonc-parser';
import { ServerConfigError } from '../../raft/node/server-config';
import { parseHostPort } from '../../raft/transport/options';

/** A server config is a few hundred bytes; anything near this is not one. */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;
const MAX_JSON_DEPTH = 8;
const MAX_MEMBERS = 64;
const MAX_STRING_CHARS = 4096;
const MEMBER_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** One flag the file sets, with its value (none for --join and --verbose). */
export type FileFlag = readonly [flag: string, value?: string];
export interface ServerConfigFile {
  /** The file's settings as flags, in a fixed order (no command-line overrides applied). */
  flags: FileFlag[];
}

type Kind = 'string' | 'path' | 'address' | 'address-or-0' | 'uint' | 'boolean' | 'members';
/** Every top-level key and its flag; retention and blocks are sections without flags. */
const KEYS: ReadonlyMap<string, { flag: string; kind: Kind }> = new Map([
  ['id', { flag: '--id', kind: 'string' }],
  ['listen', { flag: '--listen', kind: 'address' }],
  ['clientListen', { flag: '--client-listen', kind: 'address-or-0' }],
  ['data', { flag: '--data', kind: 'path' }],
  ['peers', { flag: '--peers', kind: 'members' }],
  ['clients', { flag: '--clients', kind: 'members' }],
  ['metricsListen', { flag: '--metrics-listen', kind: 'address-or-0' }],
  ['sessionTtlMs', { flag: '--session-ttl-ms', kind: 'uint' }],
  ['maxSessionTtlMs', { flag: '--max-session-ttl-ms', kind: 'uint' }],
  ['tickMs', { flag: '--tick-ms', kind: 'uint' }],
  ['electionTicks', { flag: '--election-ticks', kind: 'uint' }],
  ['heartbeatTicks', { flag: '--heartbeat-ticks', kind: 'uint' }],
  ['snapshotEntries', { flag: '--snapshot-entries', kind: 'uint' }],
  ['snapshotTrailingEntries', { flag: '--snapshot-trailing-entries', kind: 'uint' }],
  ['join', { flag: '--join', kind: 'boolean' }],
  ['verbose', { flag: '--verbose', kind: 'boolean' }],
  ['dutyIntervalMs', { flag: '--duty-interval-ms', kind: 'uint' }],
  ['readOnly', { flag: '--read-only', kind: 'boolean' }],
  ['maxInodes', { flag: '--max-inodes', kind: 'uint' }],
  ['maxBlockBytes', { flag: '--max-block-bytes', kind: 'uint' }],
  ['minFreeDiskBytes', { flag: '--min-free-disk-bytes', kind: 'uint' }],
  ['tlsCa', { flag: '--tls-ca', kind: 'path' }],
  ['tlsCert', { flag: '--tls-cert', kind: 'path' }],
  ['tlsKey', { flag: '--tls-key', kind: 'path' }],
  ['clientAuth', { flag: '--client-auth', kind: 'string' }],
  ['authTokenFile', { flag: '--auth-token-file', kind: 'path' }],
] as const);
/** Sections: each key is a flag too (the flag parser decides every range). */
const SECTIONS: ReadonlyMap<string, ReadonlyMap<string, string>> = new Map([
  ['retention', new Map([['keepLast', '--keep-last'], ['keepYoungerThanMs', '--keep-younger-than-ms'], ['keepConflictsYoungerThanMs', '--keep-conflicts-younger-than-ms']])],
  ['blocks', new Map([['gcGraceMs', '--block-gc-grace-ms'], ['pinTtlMs', '--block-pin-ttl-ms'], ['repairIntervalMs', '--block-repair-interval-ms']])],
]);

// ---- strict JSON ----------------------------------------------------------

type Json = null | boolean | number | string | Json[] | JsonObject;
interface JsonObject { [key: string]: Json }

/** A parsed document plus where each object key sits, for error messages ("peers.m2" → "4:5"). */
interface Parsed { value: Json; keyPositions: Map<string, string> }

class JsonSyntaxError extends Error {
  constructor(readonly offset: number, problem: string) {
    super(problem);
  }
}

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf('\n') + 1;
  return `${before.split('\n').length}:${offset - lineStart + 1}`;
}

/**
 * JSON (no comments, no trailing commas) through jsonc-parser, which keeps
 * every node's offset — JSON.parse gives neither positions nor a way to see a
 * key repeated in one object (it keeps the last silently), and a repeated
 * "id" in a member's config must not pass unnoticed.
 */
function parseStrictJson(text: string): Parsed {
  // A byte-order mark is not JSON, but editors write one.
  const bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const errors: ParseError[] = [];
  const tree = parseTree(bom ? ' ' + text.slice(1) : text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  if (errors.length > 0 || !tree) {
    const first = errors[0];
    // "PropertyNameExpected" → "property name expected"
    const problem = first ? printParseErrorCode(first.error).replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase() : 'the file holds no JSON value';
    throw new JsonSyntaxError(first?.offset ?? 0, problem);
  }
  const keyPositions = new Map<string, string>();
  const convert = (node: JsonNode, keyPath: string, depth: number): Json => {
    if (depth > MAX_JSON_DEPTH) throw new JsonSyntaxError(node.offset, `nested deeper than ${MAX_JSON_DEPTH} levels`);
    if (node.type === 'array') return (node.children ?? []).map((child, i) => convert(child, `${keyPath}[${i}]`, depth + 1));
    if (node.type !== 'object') return node.value as Json;
    const object: JsonObject = Object.create(null) as JsonObject;
    for (const property of node.children ?? []) {
      const [keyNode, valueNode] = property.children ?? [];
      const key = keyNode.value as string;
      const childPath = keyPath ? `${keyPath}.${key}` : key;
      if (Object.prototype.hasOwnProperty.call(object, key)) throw new JsonSyntaxError(keyNode.offset, `key ${JSON.stringify(childPath)} appears twice`);
      keyPositions.set(childPath, lineColumn(text, keyNode.offset));
      object[key] = valueNode ? convert(valueNode, childPath, depth + 1) : null;
    }
    return object;
  };
  return { value: convert(tree, '', 0), keyPositions };
}

// ---- validation -------------------------------------------------------------

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeOf(value: Json): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value).slice(0, 40)}`;
}

/** The closest known key, to turn "unknown key clientListn" into a fix. */
function suggestion(key: string, known: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) { best = candidate; bestDistance = distance; }
  }
  return best === undefined ? '' : ` (did you mean ${JSON.stringify(best)}?)`;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3 || a.length > 64 || b.length > 64) return Infinity;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length];
}

class FileChecker {
  constructor(private readonly file: string, private readonly keyPositions: Map<string, string>) {}

  fail(keyPath: string, problem: string): never {
    const position = this.keyPositions.get(keyPath);
    throw new ServerConfigError(`${this.file}${position ? `:${position}` : ''}: ${keyPath ? `key ${JSON.stringify(keyPath)}: ` : ''}${problem}`);
  }

  /** Keys of `object` not in `known` are errors, named with their position and the likely intended key. */
  onlyKnownKeys(object: JsonObject, known: ReadonlySet<string> | ReadonlyMap<string, unknown>, prefix: string): void {
    for (const key of Object.keys(object)) {
      if (known.has(key)) continue;
      const keyPath = prefix ? `${prefix}.${key}` : key;
      const position = this.keyPositions.get(keyPath);
      throw new ServerConfigError(`${this.file}${position ? `:${position}` : ''}: unknown key ${JSON.stringify(keyPath)}${suggestion(key, known.keys())}; see metaserver/server/README-config.md`);
    }
  }

  string(keyPath: string, value: Json): string {
    if (typeof value !== 'string') this.fail(keyPath, `must be a string, got ${typeOf(value)}`);
    if (value.length === 0 || value.length > MAX_STRING_CHARS) this.fail(keyPath, `must be 1..${MAX_STRING_CHARS} characters long`);
    if (value.startsWith('--')) this.fail(keyPath, `must not start with "--"`);
    if (value.includes('\u0000')) this.fail(keyPath, 'must not contain a NUL character');
    return value;
  }

  address(keyPath: string, value: Json, allowPortZero: boolean): string {
    const address = this.string(keyPath, value);
    try {
      parseHostPort(address, allowPortZero);
    } catch (error) {
      this.fail(keyPath, (error as Error).message);
    }
    return address;
  }

  uint(keyPath: string, value: Json): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) this.fail(keyPath, `must be a whole number ≥ 0, got ${typeOf(value)}`);
    return value;
  }

  /** { id: "host:port" } → "id=host:port,..." (ids sorted, so the flag is the same whatever the file's order). */
  members(keyPath: string, value: Json): Map<string, string> {
    if (!isObject(value)) this.fail(keyPath, `must be an object of member id → "host:port", got ${typeOf(value)}`);
    const entries = Object.keys(value).sort();
    if (entries.length === 0) this.fail(keyPath, 'names no member');
    if (entries.length > MAX_MEMBERS) this.fail(keyPath, `names ${entries.length} members, at most ${MAX_MEMBERS}`);
    const members = new Map<string, string>();
    for (const id of entries) {
      if (!MEMBER_ID.test(id)) this.fail(`${keyPath}.${id}`, `member id must be 1..64 letters, digits, '.', '_' or '-'`);
      members.set(id, this.address(`${keyPath}.${id}`, value[id], false));
    }
    return members;
  }
}

/** A section's keys as flags (whole numbers; their ranges are the flag parser's). */
function sectionFlags(check: FileChecker, name: string, keys: ReadonlyMap<string, string>, value: Json): FileFlag[] {
  if (!isObject(value)) check.fail(name, `must be an object, got ${typeOf(value)}`);
  check.onlyKnownKeys(value, keys, name);
  const flags: FileFlag[] = [];
  for (const [key, flag] of keys) {
    if (value[key] !== undefined) flags.push([flag, String(check.uint(`${name}.${key}`, value[key]))]);
  }
  return flags;
}

/** Reads and checks FILE; every problem is a ServerConfigError naming the file, the position and the key. */
export function readServerConfigFile(file: string): ServerConfigFile {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new Error('not a regular file');
    if (stat.size > CONFIG_FILE_MAX_BYTES) throw new Error(`${stat.size} bytes, over the ${CONFIG_FILE_MAX_BYTES}-byte limit of a config file`);
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new ServerConfigError(`--config ${file}: cannot read the file (${(error as Error).message})`);
  }
  let parsed: Parsed;
  try {
    parsed = parseStrictJson(text);
  } catch (error) {
    if (!(error instanceof JsonSyntaxError)) throw error;
    throw new ServerConfigError(`${file}:${lineColumn(text, error.offset)}: invalid JSON: ${error.message}`);
  }
  const check: FileChecker = new FileChecker(file, parsed.keyPositions);
  const root = parsed.value;
  if (!isObject(root)) check.fail('', `must hold one JSON object, got ${typeOf(root)}`);
  check.onlyKnownKeys(root, new Set([...KEYS.keys(), ...SECTIONS.keys()]), '');

  const flags: FileFlag[] = [];
  const members = new Map<string, Map<string, string>>();
  for (const [key, { flag, kind }] of KEYS) {
    const value = root[key];
    if (value === undefined) continue;
    switch (kind) {
      case 'string': flags.push([flag, check.string(key, value)]); break;
      // Relative to the file, so a config means the same folder from wherever the server starts.
      case 'path': flags.push([flag, path.resolve(path.dirname(path.resolve(file)), check.string(key, value))]); break;
      case 'address': flags.push([flag, check.address(key, value, false)]); break;
      case 'address-or-0': flags.push([flag, check.address(key, value, true)]); break;
      case 'uint': flags.push([flag, String(check.uint(key, value))]); break;
      case 'boolean':
        if (typeof value !== 'boolean') check.fail(key, `must be true or false, got ${typeOf(value)}`);
        if (value) flags.push([flag]);
        break;
      case 'members': {
        const map = check.members(key, value);
        members.set(key, map);
        flags.push([flag, [...map].map(([id, address]) => `${id}=${address}`).join(',')]);
        break;
      }
    }
  }
  // A file may leave id or peers to the command line; when it has both, they must agree.
  const peers = members.get('peers');
  if (peers && typeof root.id === 'string' && !peers.has(root.id)) check.fail('id', `${JSON.stringify(root.id)} is not one of the peers (${[...peers.keys()].join(', ')})`);
  const clients = members.get('clients');
  if (peers && clients) {
    for (const id of clients.keys()) if (!peers.has(id)) check.fail(`clients.${id}`, `${JSON.stringify(id)} is not one of the peers (${[...peers.keys()].join(', ')})`);
  }
  for (const [name, keys] of SECTIONS) {
    if (root[name] !== undefined) flags.push(...sectionFlags(check, name, keys, root[name]));
  }
  return { flags };
}

/** The --config FILE in argv (either spelling) and the other arguments; undefined file when absent. */
function splitConfigFlag(argv: readonly string[]): { file: string | undefined; rest: string[] } {
  let file: string | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    let value: string | undefined;
    if (arg === '--config') value = argv[++i];
    else if (arg.startsWith('--config=')) value = arg.slice('--config='.length);
    else { rest.push(arg); continue; }
    if (value === undefined || value === '' || value.startsWith('--')) throw new ServerConfigError('--config needs a FILE');
    if (file !== undefined) throw new ServerConfigError('--config given twice');
    file = value;
  }
  return { file, rest };
}

/** The flag name of an argument ("--tick-ms" for "--tick-ms=20"), or undefined for a value. */
function flagName(arg: string): string | undefined {
  if (!arg.startsWith('--')) return undefined;
  const equals = arg.indexOf('=');
  return equals > 0 ? arg.slice(0, equals) : arg;
}

/**
 * argv with `--config FILE` replaced by the file's settings as flags; a flag
 * also given on the command line is taken from the command line. argv
 * without --config comes back unchanged.
 */
export function argsFromConfigFile(argv: readonly string[]): string[] {
  const { file, rest } = splitConfigFlag(argv);
  if (file === undefined) return [...argv];
  const overridden = new Set(rest.map(flagName).filter((name): name is string => name !== undefined));
  const kept = readServerConfigFile(file).flags.filter(([flag]) => !overridden.has(flag));
  return [...kept.flatMap(([flag, value]) => (value === undefined ? [flag] : [flag, value])), ...rest];
}
