/**
 * The kvtest client API (proto/kvtest.proto) served over a RaftNode and the
 * KV state machine: puts become proposals, gets wait for ReadIndex.
 * Owns the mapping of node errors to NotLeader hints and error strings, and
 * the bound on puts in flight per stream. Must never read state for a
 * linearizable get before readIndex() resolved.
 */
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError } from '../core/types';
import { KvResult, KvStateMachine, encodeKvCommand } from './kv-state-machine';
import {
  DumpRequest, DumpResponse, GetRequest, GetResponse, NotLeaderHint, PutBatch, PutRequest, PutResponse, PutResults, StatusResponse,
  TransferLeadershipRequest, TransferLeadershipResponse, kvTestService,
} from './kvtest-proto';
import { RaftNode } from './raft-node';

export interface KvServiceOptions {
  /** How long a put or get waits for the cluster. */
  requestTimeoutMs: number;
  /** Puts in flight on one PutStream; more are answered at once with an error. */
  maxStreamInFlight: number;
  /** Dump answers at most this many keys. */
  maxDumpKeys: number;
}

export const KV_SERVICE_DEFAULTS: KvServiceOptions = { requestTimeoutMs: 5_000, maxStreamInFlight: 4_096, maxDumpKeys: 100_000 };

function hintOf(error: unknown): NotLeaderHint | undefined {
  return error instanceof NotLeaderError ? { leaderId: error.leaderId, leaderAddress: error.leaderAddress } : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function kvServiceImplementation(node: RaftNode, kv: KvStateMachine, options: KvServiceOptions = KV_SERVICE_DEFAULTS): grpc.UntypedServiceImplementation {
  const put = async (request: PutRequest): Promise<PutResponse> => {
    const response: PutResponse = { requestId: request.requestId, index: 0, error: '' };
    try {
      const data = encodeKvCommand({ op: 'put', key: request.key, value: request.value });
      const result = (await node.propose(data, { timeoutMs: options.requestTimeoutMs })) as KvResult;
      if (result.error) response.error = result.error;
      response.index = result.index;
    } catch (error) {
      const hint = hintOf(error);
      if (hint) response.notLeader = hint;
      else response.error = messageOf(error) || 'put failed';
    }
    return response;
  };

  const handlers: Record<keyof typeof kvTestService, grpc.UntypedHandleCall> = {
    Put: (call: grpc.ServerUnaryCall<PutRequest, PutResponse>, callback: grpc.sendUnaryData<PutResponse>) => {
      void put(call.request).then((response) => callback(null, response));
    },

    PutStream: (call: grpc.ServerDuplexStream<PutBatch, PutResults>) => {
      let inFlight = 0;
      let ended = false;
      // Answers applied in the same turn of the event loop leave in one message.
      let outgoing: PutResponse[] = [];
      let flushScheduled = false;
      const flush = () => {
        flushScheduled = false;
        if (outgoing.length > 0 && !call.cancelled && call.writable) call.write({ results: outgoing });
        outgoing = [];
        if (ended && inFlight === 0) call.end();
      };
      const answer = (response: PutResponse) => {
        outgoing.push(response);
        if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(flush);
        }
      };
      call.on('data', (batch: PutBatch) => {
        for (const request of batch.puts) {
          if (inFlight >= options.maxStreamInFlight) {
            answer({ requestId: request.requestId, index: 0, error: `more than ${options.maxStreamInFlight} puts in flight on this stream` });
            continue;
          }
          inFlight++;
          void put(request).then((response) => {
            inFlight--;
            answer(response);
          });
        }
      });
      call.on('end', () => {
        ended = true;
        if (!flushScheduled) flush();
      });
      call.on('error', () => { ended = true; });
    },

    Get: (call: grpc.ServerUnaryCall<GetRequest, GetResponse>, callback: grpc.sendUnaryData<GetResponse>) => {
      void (async (): Promise<GetResponse> => {
        try {
          if (!call.request.local) await node.readIndex({ timeoutMs: options.requestTimeoutMs });
          const value = await kv.get(call.request.key);
          return { found: value !== undefined, value: value ?? new Uint8Array(0), error: '' };
        } catch (error) {
          const hint = hintOf(error);
          return { found: false, value: new Uint8Array(0), error: hint ? '' : messageOf(error), notLeader: hint };
        }
      })().then((response) => callback(null, response));
    },

    Dump: (call: grpc.ServerUnaryCall<DumpRequest, DumpResponse>, callback: grpc.sendUnaryData<DumpResponse>) => {
      const limit = Math.min(call.request.limit || options.maxDumpKeys, options.maxDumpKeys);
      kv.dump(limit).then(
        (dump) => callback(null, dump),
        (error) => callback({ code: grpc.status.INTERNAL, details: messageOf(error) }),
      );
    },

    Status: (_call: grpc.ServerUnaryCall<unknown, StatusResponse>, callback: grpc.sendUnaryData<StatusResponse>) => {
      try {
        const status = node.status();
        callback(null, {
          id: status.id, role: status.role, term: status.term, leaderId: status.leaderId, commitIndex: status.commit,
          appliedIndex: status.appliedIndex, leaderAddress: status.leaderAddress,
        });
      } catch (error) {
        callback({ code: grpc.status.UNAVAILABLE, details: messageOf(error) });
      }
    },

    TransferLeadership: (call: grpc.ServerUnaryCall<TransferLeadershipRequest, TransferLeadershipResponse>, callback: grpc.sendUnaryData<TransferLeadershipResponse>) => {
      const timeoutMs = call.request.timeoutMs || options.requestTimeoutMs;
      node.transferLeadership(call.request.to || undefined, { timeoutMs }).then(
        (newLeaderId) => callback(null, { newLeaderId, error: '' }),
        (error) => callback(null, { newLeaderId: '', notLeader: hintOf(error), error: hintOf(error) ? '' : messageOf(error) }),
      );
    },
  };
  return handlers;
}
