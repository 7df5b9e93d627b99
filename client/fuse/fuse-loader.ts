/**
 * Finds and loads fuse-native with the libfuse.so.2 shipped in node_modules (fuse-shared-library-linux),
 * so a fresh machine needs nothing beyond `npm ci` (+ the postinstall patch, see native/).
 * Owns: the environment of the mount process (`mountProcessEnv`) and the in-process load + checks
 * (`loadFuseNative`). It must never load fuse-native in a process that is not the mount process, and
 * never fall back to a system libfuse silently.
 *
 * Why LD_PRELOAD and not LD_LIBRARY_PATH: fuse.node has DT_NEEDED "libfuse.so.2", but the package ships
 * the library under the file name "libfuse.so" (its SONAME is libfuse.so.2). The loader looks for the file
 * name "libfuse.so.2" in LD_LIBRARY_PATH and does not find it. A preloaded object whose SONAME matches a
 * DT_NEEDED entry satisfies it, so LD_PRELOAD=<abs path>/libfuse.so works with no file created anywhere.
 * Both variables are read by ld.so at exec time only, hence the mount runs as a child spawned with this env.
 */
import * as fs from 'fs';
import * as path from 'path';

export const PATCH_LEVEL_REQUIRED = 3;

export interface FuseNativePaths {
  /** node_modules/fuse-native */
  fuseNativeDir: string;
  /** node_modules/fuse-shared-library-linux/libfuse/lib/libfuse.so (SONAME libfuse.so.2) */
  libfusePath: string;
  /** node_modules/fuse-shared-library-linux/libfuse/bin (fusermount, for unprivileged mount/unmount) */
  fuseBinDir: string;
  fusermountPath: string;
}

export function fuseNativePaths(): FuseNativePaths {
  const fuseNativeDir = path.dirname(require.resolve('fuse-native/package.json'));
  // fuse-shared-library-linux is a dependency of fuse-native's dependency: resolve it from there.
  const sharedDir = path.dirname(require.resolve('fuse-shared-library-linux/package.json', { paths: [fuseNativeDir] }));
  const libfusePath = path.join(sharedDir, 'libfuse', 'lib', 'libfuse.so');
  const fuseBinDir = path.join(sharedDir, 'libfuse', 'bin');
  return { fuseNativeDir, libfusePath, fuseBinDir, fusermountPath: path.join(fuseBinDir, 'fusermount') };
}

/** The environment for `node dist/client/fuse/mount-process.js`: the parent passes it to spawn(). */
export function mountProcessEnv(baseEnv: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (process.platform !== 'linux') throw new Error(`handlefs mount: FUSE is supported on Linux only, not ${process.platform}`);
  const p = fuseNativePaths();
  if (!fs.existsSync(p.libfusePath)) throw new Error(`handlefs mount: ${p.libfusePath} is missing (run npm ci)`);
  const preload = [p.libfusePath, ...(baseEnv.LD_PRELOAD ?? '').split(/[: ]/).filter((s) => s && s !== p.libfusePath)];
  return {
    ...baseEnv,
    LD_PRELOAD: preload.join(':'),
    // libfuse execs fusermount itself only when not root (mount) — it must find the packaged one.
    PATH: [p.fuseBinDir, baseEnv.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
  };
}

/** The subset of fuse-native's class the host relies on. */
export interface FuseNativeInstance {
  mount(cb: (err: Error | null) => void): void;
}
export type FuseNativeCtor = new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>) => FuseNativeInstance;

export interface LoadedFuseNative {
  Fuse: FuseNativeCtor;
  /** umount2(dir, MNT_DETACH) from the patched binding; returns 0 or a negative errno. */
  umount(dir: string): number;
  /** Byte offset of {uid, gid, pid, umask} (4 x uint32) in the per-request buffer fuse-native hands to JS. */
  callerOffsetBytes: number;
  libfuseLoadedFrom: string;
}

interface PatchedBinding {
  handlefs_patch_level?: number;
  handlefs_umount?: (dir: string) => number;
  offsetof_fuse_thread_locals_t_handlefs_caller?: number;
}

/** Only in the mount process. Throws a message naming the fix when anything is off. */
export function loadFuseNative(): LoadedFuseNative {
  const p = fuseNativePaths();
  const preloaded = (process.env.LD_PRELOAD ?? '').split(/[: ]/);
  if (!preloaded.includes(p.libfusePath)) {
    throw new Error(`handlefs mount: start this process with LD_PRELOAD=${p.libfusePath} (use mount-control.startMount)`);
  }
  const Fuse = require('fuse-native') as FuseNativeCtor;
  // node-gyp-build caches the addon by path: this is the very binding fuse-native uses.
  const binding = (require('node-gyp-build') as (dir: string) => PatchedBinding)(p.fuseNativeDir);
  if (binding.handlefs_patch_level === undefined || binding.handlefs_patch_level < PATCH_LEVEL_REQUIRED ||
      typeof binding.handlefs_umount !== 'function' || typeof binding.offsetof_fuse_thread_locals_t_handlefs_caller !== 'number') {
    throw new Error('handlefs mount: fuse-native is not patched (utimens, caller uid/gid, unmount): ' +
      'run `node client/fuse/native/patch-fuse-native.js`');
  }
  const libfuseLoadedFrom = mappedLibfuse();
  if (libfuseLoadedFrom !== p.libfusePath) {
    throw new Error(`handlefs mount: libfuse was loaded from ${libfuseLoadedFrom}, expected ${p.libfusePath}`);
  }
  const umount = binding.handlefs_umount;
  return { Fuse, umount: (dir) => umount(dir), callerOffsetBytes: binding.offsetof_fuse_thread_locals_t_handlefs_caller, libfuseLoadedFrom };
}

/** Which file provides libfuse in this process (our own /proc/self/maps: not the mount, safe to read sync). */
function mappedLibfuse(): string {
  const files = new Set<string>();
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const file = line.split(/\s+/)[5];
    if (file && /\/libfuse\.so/.test(file)) files.add(file);
  }
  if (files.size !== 1) throw new Error(`handlefs mount: expected one libfuse mapping, found ${JSON.stringify([...files])}`);
  return [...files][0];
}
