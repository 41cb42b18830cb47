/**
 * The admissions baseline: a trivial grpc-js server in its own process whose one unary method answers with the
 * request it got. It (de)serializes the same RedeemRequest message the gate sends, so the ratio Redeem/echo
 * isolates what the gateway adds: device check, the admission transaction, metrics, logging.
 * Prints {"echoPort": N} on stdout when listening; stops on SIGTERM.
 */
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { echoServiceDefinition } from './echo-service';
import type { RedeemRequest } from '../src/gen/ticketgateway/gates/v1/gates';

const server = new Server();
server.addService(echoServiceDefinition, {
  echo(call: ServerUnaryCall<RedeemRequest, RedeemRequest>, callback: sendUnaryData<RedeemRequest>) {
    callback(null, call.request);
  },
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    process.stderr.write(`echo server: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ echoPort: port }) + '\n');
});
process.once('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
