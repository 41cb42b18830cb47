/** Real gRPC clients for tests, built from the generated definitions (the same ones the server uses). */
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { OrderServiceClient as GeneratedOrderClient } from '../../src/gen/ticketgateway/orders/v1/orders';

export function orderClient(port: number): GeneratedOrderClient {
  return new GeneratedOrderClient(`127.0.0.1:${port}`, credentials.createInsecure());
}

/** Calls a unary method and resolves its response, or rejects with the ServiceError. */
export function unary<Req, Res>(client: Client, method: string, req: Req, metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method]!;
    fn.call(client, req, metadata, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

export async function healthCheck(port: number, serviceName = ''): Promise<string> {
  const Ctor = makeGenericClientConstructor(healthService, 'Health');
  const client = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    const res = await unary<{ service: string }, { status: string | number }>(client, 'check', { service: serviceName });
    return String(res.status);
  } finally {
    client.close();
  }
}
