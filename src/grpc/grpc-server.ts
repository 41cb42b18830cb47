/**
 * The gRPC edge: our services, the standard health service and server reflection, with one wrapper per call for
 * metrics, request-scoped logs and fault mapping (as nice-grpc keeps those concerns apart from handlers).
 */
import {
  Server,
  ServerCredentials,
  status,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type handleUnaryCall,
  type handleServerStreamingCall,
} from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';
import * as protoLoader from '@grpc/proto-loader';
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Logger } from '../observability/logger';
import type { GatewayMetrics } from '../observability/metrics';
import { projectRoot } from '../support/project-root';
import { GrpcFault, toServiceError } from './grpc-errors';
import { CallerAuthenticator, type CallerPolicy } from './caller-auth';

/** What a handler gets besides the request: a logger carrying the request id and the caller. */
export interface CallContext {
  readonly requestId: string;
  /**
   * The authenticated service name ("anonymous" when service tokens are off); on self-authenticated services
   * (gates) the claimed `device:<code>`, which the handler verifies.
   */
  readonly caller: string;
  readonly log: Logger;
  readonly metadata: import('@grpc/grpc-js').Metadata;
}

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...protoFiles(p));
    else if (name.endsWith('.proto')) out.push(p);
  }
  return out.sort();
}

/** Resolves when a stream can take more (drain), or will never (cancelled, closed). */
function writable(call: import('node:events').EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const events = ['drain', 'cancelled', 'close', 'error'] as const;
    const done = (): void => {
      for (const e of events) call.off(e, done);
      resolve();
    };
    for (const e of events) call.once(e, done);
  });
}

export class GrpcServer {
  readonly server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly serviceNames: string[] = [];
  private unaryInFlight = 0;

  /** Unary calls being handled now (the work runner yields to them). */
  get unaryCallsInFlight(): number {
    return this.unaryInFlight;
  }

  constructor(
    private readonly log: Logger,
    private readonly metrics: GatewayMetrics,
    /** Service tokens; the default lets every caller in as "anonymous". */
    private readonly callers: CallerAuthenticator = new CallerAuthenticator(new Map()),
  ) {
    this.health.addToServer(this.server);
  }

  /**
   * Adds a service. Handlers may be async (return the response or throw a GrpcFault); the wrapper turns that into
   * grpc-js callbacks, times the call and counts it by status code.
   */
  addService<D extends ServiceDefinition>(
    definition: D,
    impl: { [K in keyof D]: (request: any, ctx: CallContext, call: any) => Promise<any> | AsyncIterable<any> },
    /** Who may call: internal services with a token (the default), or the service checks callers itself. */
    opts: { callers?: CallerPolicy } = {},
  ): void {
    const policy = opts.callers ?? 'service-token';
    const wrapped: UntypedServiceImplementation = {};
    let fullName = '';
    for (const [name, method] of Object.entries(definition)) {
      const handler = impl[name as keyof D];
      // path is "/package.Service/Method": the labels and the health service name come from it.
      const [, service = '', rpc = name] = method.path.split('/');
      fullName = service;
      const labels = { grpc_service: service, grpc_method: rpc };
      if (!method.requestStream && !method.responseStream) {
        const unary: handleUnaryCall<unknown, unknown> = (call, callback) => {
          const started = performance.now();
          const { ctx, refused } = this.context(call.metadata, labels.grpc_method, policy);
          const end = this.metrics.grpcHandlingSeconds.startTimer({ grpc_type: 'unary', ...labels });
          this.unaryInFlight++;
          Promise.resolve()
            .then(() => {
              if (refused) throw refused;
              return handler(call.request, ctx, call) as Promise<unknown>;
            })
            .then(
              (res) => {
                end();
                this.unaryInFlight--;
                this.metrics.grpcHandled.inc({ grpc_type: 'unary', ...labels, grpc_code: status[status.OK] });
                this.logCall(ctx, status.OK, started);
                callback(null, res);
              },
              (err: unknown) => {
                end();
                this.unaryInFlight--;
                const { error, internal } = toServiceError(err);
                if (internal) ctx.log.error({ err }, 'gRPC handler failed');
                this.metrics.grpcHandled.inc({ grpc_type: 'unary', ...labels, grpc_code: status[error.code ?? status.UNKNOWN] });
                this.logCall(ctx, error.code ?? status.UNKNOWN, started);
                callback(error, null);
              },
            );
        };
        wrapped[name] = unary;
      } else if (!method.requestStream && method.responseStream) {
        const stream: handleServerStreamingCall<unknown, unknown> = async (call) => {
          const started = performance.now();
          const { ctx, refused } = this.context(call.metadata, labels.grpc_method, policy);
          const end = this.metrics.grpcHandlingSeconds.startTimer({ grpc_type: 'server_stream', ...labels });
          let code: status = status.OK;
          try {
            if (refused) throw refused;
            for await (const msg of handler(call.request, ctx, call) as AsyncIterable<unknown>) {
              if (call.cancelled) break;
              // Backpressure: a slow reader holds the producer instead of growing our buffer.
              if (!call.write(msg)) await writable(call);
            }
            this.metrics.grpcHandled.inc({ grpc_type: 'server_stream', ...labels, grpc_code: status[status.OK] });
            call.end();
          } catch (err) {
            const { error, internal } = toServiceError(err);
            if (internal) ctx.log.error({ err }, 'gRPC stream handler failed');
            code = error.code ?? status.UNKNOWN;
            this.metrics.grpcHandled.inc({ grpc_type: 'server_stream', ...labels, grpc_code: status[code] });
            // grpc-js turns an 'error' event into the call's status; destroy() would drop the status (the client hangs).
            call.emit('error', Object.assign(new Error(error.details), error));
          } finally {
            end();
            this.logCall(ctx, call.cancelled && code === status.OK ? status.CANCELLED : code, started);
          }
        };
        wrapped[name] = stream;
      } else {
        throw new Error(`${service}.${rpc}: client and bidi streaming are not used by the gateway`);
      }
    }
    this.server.addService(definition, wrapped);
    this.serviceNames.push(fullName);
  }

  /** The call's context; `refused` is the UNAUTHENTICATED fault when the policy wants a token and none fits. */
  private context(metadata: import('@grpc/grpc-js').Metadata, method: string, policy: CallerPolicy): { ctx: CallContext; refused?: GrpcFault } {
    const given = metadata.get('x-request-id')[0];
    const requestId = typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : randomUUID();
    let caller: string;
    let refused: GrpcFault | undefined;
    if (policy === 'self-authenticated') {
      const device = metadata.get('x-device-code')[0];
      caller = typeof device === 'string' && /^[\w.:-]{1,64}$/.test(device) ? `device:${device}` : 'device:unknown';
    } else {
      const check = this.callers.check(metadata);
      caller = check.ok ? check.caller : 'unauthenticated';
      if (!check.ok) {
        refused = new GrpcFault(status.UNAUTHENTICATED, 'a valid service token is required (authorization: Bearer <token>)', 'CALLER_NOT_AUTHENTICATED', { problem: check.problem });
      }
    }
    return { ctx: { requestId, caller, metadata, log: this.log.child({ requestId, rpc: method, caller }) }, refused };
  }

  /** One line per call with its caller, outcome and duration. */
  private logCall(ctx: CallContext, code: status, started: number): void {
    const fields = { grpcCode: status[code], durationMs: Math.round((performance.now() - started) * 10) / 10 };
    if (code === status.UNAUTHENTICATED) ctx.log.warn(fields, 'gRPC call refused');
    else ctx.log.info(fields, 'gRPC call');
  }

  /** Reflection over every .proto in proto/, so `buf curl` and grpcurl-like tools can discover the API. */
  private addReflection(): void {
    const root = join(projectRoot(), 'proto');
    const files = protoFiles(root).map((f) => relative(root, f));
    const pkg = protoLoader.loadSync(files, { includeDirs: [root], keepCase: true });
    new ReflectionService(pkg).addToServer(this.server);
  }

  setServing(servingStatus: ServingStatus): void {
    this.health.setStatus('', servingStatus);
    for (const name of this.serviceNames) this.health.setStatus(name, servingStatus);
  }

  async listen(port: number, host: string): Promise<number> {
    this.addReflection();
    const bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.setServing('SERVING');
    return bound;
  }

  /** Graceful stop: health says NOT_SERVING, no new calls, in-flight calls finish until the grace period ends. */
  async close(graceMs: number): Promise<void> {
    this.setServing('NOT_SERVING');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
