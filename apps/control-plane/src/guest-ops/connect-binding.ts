import type { DescMethodUnary, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { VMService } from '@lq/proto';

type Methods = (typeof VMService)['method'];

/** VMService's unary methods (the guest operations' Connect and gRPC face). */
export type UnaryMethod = {
  [K in keyof Methods]: Methods[K] extends DescMethodUnary ? K : never;
}[keyof Methods];

export type MethodInput<M extends UnaryMethod> = MessageShape<Methods[M]['input']>;
export type MethodOutput<M extends UnaryMethod> = MessageInitShape<Methods[M]['output']>;

/**
 * How an operation is reached over Connect and gRPC: which VMService method, how its request
 * becomes the operation's VM and input, how the result becomes its response. The Connect routes
 * and their method permissions are derived from these (connect/vm-service.routes.ts).
 */
export interface ConnectBinding<I, T, M extends UnaryMethod = UnaryMethod> {
  readonly method: M;
  input(req: MethodInput<M>): { vmId: string; input: I };
  output(result: T, req: MethodInput<M>): MethodOutput<M>;
}

/** A binding with its method's types checked (the spec keeps it as ConnectBinding<I, T>). */
export function connectBinding<M extends UnaryMethod, I, T>(
  binding: ConnectBinding<I, T, M>,
): ConnectBinding<I, T> {
  return binding;
}
