/**
 * What the API handler groups (meta-service.ts: sessions and namespace;
 * file-handlers.ts: fhs, versions, blocks) share: the per-call deadline, the
 * way to propose a mutation and to make a read linearizable, and the reply
 * shapes common to all. Owns no state and decides nothing.
 */
import * as grpc from '@grpc/grpc-js';
import type { Member } from '../../raft/core/types';
import { MalformedRequest } from '../../proto/grpc-method';
import { Result } from '../rules/errno';
import { MutationBody } from '../state/commands';
import { CommandResult, MetaStateMachine } from '../state/meta-state-machine';
import { Attrs } from '../state/records';
import { BlockAccess } from './block-access';
import { MetaMetrics } from './meta-metrics';
import * as p from '../../proto/meta-proto';

/** One call as the handlers see it: when the client stops waiting. */
export interface CallInfo {
  /** Absolute Date.now() time; proposals, reads and block transfers give up by then. */
  deadlineMs: number;
}

export interface ServiceContext {
  machine: MetaStateMachine;
  blocks: BlockAccess;
  metrics?: MetaMetrics;
  /**
   * How long an upload's pin protects a block not yet referenced: a writer
   * holding uploaded blocks uncommitted longer pins them again (PutBlock with
   * the id alone). A dropped version's blocks wait out the pin before collection.
   */
  blockPinTtlMs: number;
  /** Checks the header and the server's limits, stamps the leader's clock, proposes, and builds blocks the state asks for. */
  /** newBlockBytes: bytes an upload adds, for the block limits. */
  mutate(header: p.Header | null, body: MutationBody, call: CallInfo, newBlockBytes?: number): Promise<CommandResult>;
  /** Resolves once a read of this member's state is linearizable (at once under debug-unsafe stale-reads: that is its fault). */
  linearizable(call: CallInfo): Promise<void>;
}

export type RequestOf<M extends p.MetaMethod> = (typeof p.metaService)[M] extends grpc.MethodDefinition<infer Req, infer _Res> ? Exclude<Req, MalformedRequest> : never;
export type ReplyOf<M extends p.MetaMethod> = (typeof p.metaService)[M] extends grpc.MethodDefinition<infer _Req, infer Res> ? Res : never;
export type Handler<M extends p.MetaMethod> = (request: RequestOf<M>, call: CallInfo) => Promise<ReplyOf<M>>;
export type Handlers = { [M in p.MetaMethod]: Handler<M> };

export function failureFields(result: Result<unknown>): p.Reply {
  if (result.ok) return { errno: 0, message: '', sessionError: '' };
  const session = (result as { session?: string }).session;
  return { errno: result.errno, message: result.message, sessionError: session ?? '' };
}

export function attrOf(attrs: Attrs): p.Attr {
  return { ...attrs };
}

/**
 * A member's client API address for leader hints: the one replicated in the
 * Raft membership (set by MemberAdd and by the founders' bootstrap), else this
 * server's configured one (--clients), else '' (the client tries its next server).
 */
export function memberClientAddress(id: string, members: readonly Member[], configured: ReadonlyMap<string, string>): string {
  if (!id) return '';
  return members.find((m) => m.id === id)?.clientAddress || configured.get(id) || '';
}
