/**
 * The gRPC service definition of the kvtest client API (proto/kvtest.proto),
 * built from the .proto with protobufjs so server and clients share one
 * schema. Owns (de)serialization only; must never carry server logic.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { grpcMethod } from '../../proto/grpc-method';
import { protoPath } from '../../proto/proto-path';

export interface NotLeaderHint { leaderId: string; leaderAddress: string }
export interface PutRequest { requestId: number; key: string; value: Uint8Array }
export interface PutResponse { requestId: number; index: number; notLeader?: NotLeaderHint; error: string }
export interface PutBatch { puts: PutRequest[] }
export interface PutResults { results: PutResponse[] }
export interface GetRequest { key: string; local: boolean }
export interface GetResponse { found: boolean; value: Uint8Array; notLeader?: NotLeaderHint; error: string }
export interface DumpRequest { limit: number }
export interface DumpResponse { appliedIndex: number; entries: Array<{ key: string; value: Uint8Array }>; truncated: boolean }
export type StatusRequest = Record<string, never>;
export interface StatusResponse { id: string; role: string; term: number; leaderId: string; commitIndex: number; appliedIndex: number; leaderAddress: string }
export interface TransferLeadershipRequest { to: string; timeoutMs: number }
export interface TransferLeadershipResponse { newLeaderId: string; notLeader?: NotLeaderHint; error: string }

const root = protobuf.loadSync(protoPath('kvtest.proto'));
/** kvtest's handlers trust their requests: undecodable bytes are answered INTERNAL by grpc-js. */
function method<Req, Res>(name: string, requestType: string, responseType: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Req, Res> {
  return grpcMethod<Req, Res>(root, 'kvtest', 'KvTest', name, requestType, responseType, { requestStream, responseStream, malformed: 'throw' }) as grpc.MethodDefinition<Req, Res>;
}

export const kvTestService = {
  Put: method<PutRequest, PutResponse>('Put', 'PutRequest', 'PutResponse', false, false),
  PutStream: method<PutBatch, PutResults>('PutStream', 'PutBatch', 'PutResults', true, true),
  Get: method<GetRequest, GetResponse>('Get', 'GetRequest', 'GetResponse', false, false),
  Dump: method<DumpRequest, DumpResponse>('Dump', 'DumpRequest', 'DumpResponse', false, false),
  Status: method<StatusRequest, StatusResponse>('Status', 'StatusRequest', 'StatusResponse', false, false),
  TransferLeadership: method<TransferLeadershipRequest, TransferLeadershipResponse>('TransferLeadership', 'TransferLeadershipRequest', 'TransferLeadershipResponse', false, false),
} satisfies grpc.ServiceDefinition;

/** The untyped client constructor grpc-js builds from the definition; wrap it (kvtest-client.ts) rather than use it directly. */
export const KvTestGrpcClient = grpc.makeGenericClientConstructor(kvTestService, 'KvTest');
