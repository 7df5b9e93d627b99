#!/usr/bin/env node
/*
 * Rebuilds fuse-native 2.2.6 from its own C source with four small handlefs fixes, at install time
 * (meant to run as the project's `postinstall`, after fuse-native's own install script).
 * It owns: a scratch copy of fuse-native under node_modules/.handlefs-fuse-native-build and the file
 * node_modules/fuse-native/build/Release/fuse.node (+ a marker). It must never touch any other file,
 * and never leaves fuse-native half-built: the original binary is replaced only by a finished build (rename).
 *
 * The fixes (see client/fuse/README.md for why each is needed):
 *  1. utimens passed atime twice (mtime lost): pass mtime; UTIME_NOW becomes 2^62 (JS: "now", so the
 *     servers apply utimensat's rule for now: anyone who may write) and UTIME_OMIT 2^64-1 (JS: unchanged).
 *  2. the caller's uid/gid/pid/umask (fuse_get_context) are copied into the per-thread request buffer
 *     that JS already receives; `offsetof_fuse_thread_locals_t_handlefs_caller` says where.
 *  3. create receives the open flags (info->flags) as an extra argument.
 *     flag_utime_omit_ok is set: without it libfuse 2.9 drops a setattr that changes only one of the
 *     two times (touch -m / touch -a) without an error.
 *  4. /dev/fuse is close-on-exec, and `handlefs_umount(dir)` unmounts with umount2(MNT_DETACH) so the
 *     mount process never has to spawn `fusermount -uz` (fuse-native's own unmount does).
 * Usage: node client/fuse/native/patch-fuse-native.js [--force]
 */
'use strict'
const fs = require('fs')
const path = require('path')
const { spawnSync } = require('child_process')

const PATCH_LEVEL = 3
const EXPECTED_VERSION = '2.2.6'
const BUILD_TIMEOUT_MS = 5 * 60 * 1000

const REPLACEMENTS = [
  ['#include <pthread.h>\n',
    '#include <pthread.h>\n#include <fcntl.h>\n#include <errno.h>\n#include <time.h>\n#include <stdint.h>\n#include <sys/mount.h>\n'],
  ['  int32_t res;\n',
    '  int32_t res;\n  uint32_t handlefs_caller[4]; /* handlefs: uid, gid, pid, umask of the calling process */\n'],
  ['  l->op_fn = fuse_native_dispatch_##name;\\\n',
    '  l->op_fn = fuse_native_dispatch_##name;\\\n' +
    '  { struct fuse_context *hfc = fuse_get_context(); l->handlefs_caller[0] = hfc->uid; l->handlefs_caller[1] = hfc->gid; l->handlefs_caller[2] = hfc->pid; l->handlefs_caller[3] = hfc->umask; }\\\n'],
  ['// Methods\n',
    'static uint64_t handlefs_utime_ms (const struct timespec* ts) {\n' +
    '  if (ts->tv_nsec == UTIME_OMIT) return UINT64_MAX;\n' +
    '  if (ts->tv_nsec == UTIME_NOW) return ((uint64_t) 1) << 62;\n' +
    '  if (ts->tv_sec < 0) return 0;\n' +
    '  return timespec_to_uint64(ts);\n' +
    '}\n\n// Methods\n'],
  ['  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);\n',
    '  l->atime = handlefs_utime_ms(&tv[0]);\n  l->mtime = handlefs_utime_ms(&tv[1]);\n'],
  ['  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)\n', '  FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)\n'],
  ['FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n' +
    '  l->path = path;\n  l->mode = mode;\n  l->info = info;\n}, {\n' +
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n' +
    '  napi_create_uint32(env, l->mode, &(argv[3]));\n',
  'FUSE_METHOD(create, 3, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n' +
    '  l->path = path;\n  l->mode = mode;\n  l->info = info;\n}, {\n' +
    '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n' +
    '  napi_create_uint32(env, l->mode, &(argv[3]));\n' +
    '  napi_create_uint32(env, l->info != NULL ? (uint32_t) l->info->flags : 0, &(argv[4]));\n'],
  ['  struct fuse_operations ops = { };\n', '  struct fuse_operations ops = { };\n  ops.flag_utime_omit_ok = 1;\n'],
  ['  if (ch == NULL) {\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n',
    '  if (ch == NULL) {\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n' +
    '  fcntl(fuse_chan_fd(ch), F_SETFD, FD_CLOEXEC);\n'],
  ['NAPI_INIT() {\n',
    'static const uint32_t handlefs_patch_level = ' + PATCH_LEVEL + ';\n\n' +
    'NAPI_METHOD(handlefs_umount) {\n  NAPI_ARGV(1)\n  NAPI_ARGV_UTF8(mnt, 1024, 0);\n' +
    '  int32_t res = umount2(mnt, MNT_DETACH) == 0 ? 0 : -errno;\n  NAPI_RETURN_INT32(res)\n}\n\nNAPI_INIT() {\n'],
  ['  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n',
    '  NAPI_EXPORT_FUNCTION(fuse_native_unmount)\n  NAPI_EXPORT_FUNCTION(handlefs_umount)\n' +
    '  NAPI_EXPORT_UINT32(handlefs_patch_level)\n  NAPI_EXPORT_OFFSETOF(fuse_thread_locals_t, handlefs_caller)\n']
]

function fail (msg) {
  console.error('handlefs: patch-fuse-native: ' + msg)
  process.exit(1)
}

function patchSource (source) {
  for (const [from, to] of REPLACEMENTS) {
    const count = source.split(from).length - 1
    if (count !== 1) fail('expected exactly one occurrence of ' + JSON.stringify(from.slice(0, 60)) + ', found ' + count)
    source = source.replace(from, () => to)
  }
  return source
}

function findNodeGyp () {
  const candidates = [process.env.npm_config_node_gyp,
    path.join(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')]
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js')) } catch (_) {}
  for (const c of candidates) if (c && fs.existsSync(c)) return c
  return fail('node-gyp not found (it ships with npm); tried ' + candidates.filter(Boolean).join(', '))
}

function main () {
  const force = process.argv.includes('--force')
  const pkgDir = path.dirname(require.resolve('fuse-native/package.json', { paths: [process.cwd(), __dirname] }))
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version
  if (version !== EXPECTED_VERSION) fail('fuse-native ' + version + ' found; this patch is written for ' + EXPECTED_VERSION)
  const releaseDir = path.join(pkgDir, 'build', 'Release')
  const marker = path.join(releaseDir, '.handlefs-patch-level')
  if (!force && fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === String(PATCH_LEVEL) &&
      fs.existsSync(path.join(releaseDir, 'fuse.node'))) {
    console.log('handlefs: fuse-native already patched (level ' + PATCH_LEVEL + ')')
    return
  }
  const scratch = path.join(path.dirname(pkgDir), '.handlefs-fuse-native-build')
  fs.rmSync(scratch, { recursive: true, force: true })
  fs.mkdirSync(scratch)
  for (const f of ['binding.gyp', 'fuse-native.c', 'semaphore.h', 'package.json']) {
    fs.copyFileSync(path.join(pkgDir, f), path.join(scratch, f))
  }
  fs.writeFileSync(path.join(scratch, 'fuse-native.c'), patchSource(fs.readFileSync(path.join(pkgDir, 'fuse-native.c'), 'utf8')))
  // Use the headers of the running node when they are installed (node-gyp otherwise downloads them).
  const args = [findNodeGyp(), 'rebuild']
  const prefix = path.resolve(path.dirname(process.execPath), '..')
  if (!process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push('--nodedir=' + prefix)
  const res = spawnSync(process.execPath, args, { cwd: scratch, stdio: 'inherit', timeout: BUILD_TIMEOUT_MS })
  if (res.status !== 0) fail('node-gyp rebuild failed (status ' + res.status + '); fuse-native was left unchanged')
  fs.mkdirSync(releaseDir, { recursive: true })
  const tmp = path.join(releaseDir, 'fuse.node.handlefs-tmp')
  fs.copyFileSync(path.join(scratch, 'build', 'Release', 'fuse.node'), tmp)
  fs.renameSync(tmp, path.join(releaseDir, 'fuse.node'))
  fs.writeFileSync(marker, String(PATCH_LEVEL) + '\n')
  fs.rmSync(scratch, { recursive: true, force: true })
  console.log('handlefs: fuse-native rebuilt with the handlefs patch (level ' + PATCH_LEVEL + ')')
}

main()
