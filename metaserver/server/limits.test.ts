/** What a server refuses from its configuration before proposing: EROFS on a read-only server, ENOSPC past a quota or disk limit. */
import { Errno } from '../rules/errno';
import { MutationBody } from '../state/commands';
import { ServerLimits, Usage, limitRefusal } from './limits';

const NONE: ServerLimits = { readOnly: false, maxInodes: 0, maxBlockBytes: 0, minFreeDiskBytes: 0 };
const usage = (u: Partial<Usage> = {}): Usage => ({ inodesInUse: 1, blockBytesStored: 0, diskFreeBytes: 1e12, ...u });
const create: MutationBody = { op: 'create', parent: 1, name: 'f', mode: 0o644, exclusive: true };

describe('server limits', () => {
  it('refuses nothing without limits', () => {
    expect(limitRefusal(create, NONE, usage())).toBeUndefined();
    expect(limitRefusal({ op: 'pinBlocks', ids: [], untilMs: 0 }, NONE, usage(), 1 << 20)).toBeUndefined();
  });

  it('answers every change on a read-only server with EROFS, but lets sessions close, fhs go and files open for reading', () => {
    const ro = { ...NONE, readOnly: true };
    for (const body of [create, { op: 'unlink', parent: 1, name: 'f' }, { op: 'setattr', handle: 2, mode: 0o600 }, { op: 'open', handle: 2, read: true, write: true, append: false }] as MutationBody[]) {
      expect(limitRefusal(body, ro, usage())).toMatchObject({ ok: false, errno: Errno.EROFS });
    }
    for (const body of [{ op: 'closeSession' }, { op: 'release', fh: 3 }, { op: 'open', handle: 2, read: true, write: false, append: false }] as MutationBody[]) {
      expect(limitRefusal(body, ro, usage())).toBeUndefined();
    }
  });

  it('answers ENOSPC for a new inode at the inode limit, and for a block past the byte limit or the free-disk floor', () => {
    expect(limitRefusal(create, { ...NONE, maxInodes: 10 }, usage({ inodesInUse: 10 }))).toMatchObject({ errno: Errno.ENOSPC });
    expect(limitRefusal(create, { ...NONE, maxInodes: 10 }, usage({ inodesInUse: 9 }))).toBeUndefined();
    const pin: MutationBody = { op: 'pinBlocks', ids: [], untilMs: 0 };
    expect(limitRefusal(pin, { ...NONE, maxBlockBytes: 100 }, usage({ blockBytesStored: 90 }), 20)).toMatchObject({ errno: Errno.ENOSPC });
    expect(limitRefusal(pin, { ...NONE, minFreeDiskBytes: 1000 }, usage({ diskFreeBytes: 1010 }), 20)).toMatchObject({ errno: Errno.ENOSPC });
    expect(limitRefusal(pin, { ...NONE, minFreeDiskBytes: 1000 }, usage({ diskFreeBytes: 1030 }), 20)).toBeUndefined();
    // Unlinking frees space: never refused for lack of it.
    expect(limitRefusal({ op: 'unlink', parent: 1, name: 'f' }, { ...NONE, maxInodes: 1 }, usage({ inodesInUse: 5 }))).toBeUndefined();
  });
});
