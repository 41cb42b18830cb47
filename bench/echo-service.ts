/** The echo baseline's one method, carrying the gate's RedeemRequest both ways (shared by server and client). */
import { makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { RedeemRequest } from '../src/gen/ticketgateway/gates/v1/gates';

export const echoServiceDefinition: ServiceDefinition = {
  echo: {
    path: '/bench.v1.EchoService/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: RedeemRequest) => Buffer.from(RedeemRequest.encode(value).finish()),
    requestDeserialize: (value: Buffer) => RedeemRequest.decode(value),
    responseSerialize: (value: RedeemRequest) => Buffer.from(RedeemRequest.encode(value).finish()),
    responseDeserialize: (value: Buffer) => RedeemRequest.decode(value),
  },
};

export const EchoClient = makeGenericClientConstructor(echoServiceDefinition, 'EchoService');
