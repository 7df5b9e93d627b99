/**
 * Concurrent getattr calls of one process sent as one GetAttrs (one ReadIndex
 * on the server): calls made in the same event-loop turn are batched (≤ 1,024
 * items a batch) and each caller gets its own answer, read after its call
 * began. Owns batching only; must never cache an answer.
 */
import * as p from '../../proto/meta-proto';

export const GETATTRS_ITEMS_MAX = 1024;

interface Pending { item: p.GetAttrRequest; resolve: (reply: p.AttrReply) => void; reject: (error: Error) => void }

export class GetAttrCoalescer {
  private pending: Pending[] = [];
  private scheduled = false;
  /** Calls sent (GetAttr for a lone item, GetAttrs for two or more) and items answered: tests check coalescing with these. */
  readonly stats = { batches: 0, items: 0 };

  constructor(
    private readonly sendOne: (item: p.GetAttrRequest) => Promise<p.AttrReply>,
    private readonly sendMany: (items: p.GetAttrRequest[]) => Promise<p.GetAttrsReply>,
  ) {}

  getattr(item: p.GetAttrRequest): Promise<p.AttrReply> {
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    for (let start = 0; start < all.length; start += GETATTRS_ITEMS_MAX) {
      const batch = all.slice(start, start + GETATTRS_ITEMS_MAX);
      this.stats.batches++;
      this.stats.items += batch.length;
      if (batch.length === 1) {
        this.sendOne(batch[0].item).then(batch[0].resolve, batch[0].reject);
        continue;
      }
      this.sendMany(batch.map((b) => b.item)).then(
        (reply) => {
          if (reply.items.length !== batch.length) {
            const error = new Error(`GetAttrs answered ${reply.items.length} items for ${batch.length}`);
            batch.forEach((b) => b.reject(error));
            return;
          }
          batch.forEach((b, i) => b.resolve(reply.items[i]));
        },
        (error: Error) => batch.forEach((b) => b.reject(error)),
      );
    }
  }
}
