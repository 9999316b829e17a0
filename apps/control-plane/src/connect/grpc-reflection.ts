import { create, fromBinary, toBinary, type DescFile } from '@bufbuild/protobuf';
import { nestedTypes } from '@bufbuild/protobuf/reflect';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ConnectRouter } from '@connectrpc/connect';
import { reflectionV1, reflectionV1alpha } from '@lq/proto';

type ReflectionRequest = reflectionV1.ServerReflectionRequest;
type ReflectionResponse = reflectionV1.ServerReflectionResponse;

/** The reflection services this module serves (both wire-identical versions). */
export const REFLECTION_SERVICES = [
  reflectionV1.ServerReflection.typeName,
  reflectionV1alpha.ServerReflection.typeName,
];

/**
 * Answers gRPC server reflection (grpc.reflection.v1 and v1alpha, ServerReflectionInfo) from
 * protobuf-es descriptors: list_services, file_by_filename and file_containing_symbol, each file
 * with its transitive dependencies as serialized FileDescriptorProtos. Extensions are not used
 * by these services: file_containing_extension answers NOT_FOUND, all_extension_numbers_of_type
 * UNIMPLEMENTED.
 */
export class ServerReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(
    roots: DescFile[],
    /** Full names of the services served, as list_services reports them. */
    private readonly services: string[],
  ) {
    const visit = (file: DescFile): void => {
      if (this.files.has(file.proto.name)) {
        return;
      }
      this.files.set(file.proto.name, file);
      for (const type of nestedTypes(file)) {
        this.symbols.set(type.typeName, file);
        if (type.kind === 'service') {
          for (const method of type.methods) {
            this.symbols.set(`${type.typeName}.${method.name}`, file);
          }
        } else if (type.kind === 'message') {
          for (const field of type.fields) {
            this.symbols.set(`${type.typeName}.${field.name}`, file);
          }
        } else if (type.kind === 'enum') {
          // Enum values are scoped as siblings of their enum, as in protoc.
          const scope = type.typeName.slice(0, type.typeName.lastIndexOf('.') + 1);
          for (const value of type.values) {
            this.symbols.set(`${scope}${value.name}`, file);
          }
        }
      }
      file.dependencies.forEach(visit);
    };
    roots.forEach(visit);
  }

  /** One reply per request, as the reflection protocol pairs them. */
  answer(request: ReflectionRequest): ReflectionResponse {
    const reply = (messageResponse: ReflectionResponse['messageResponse']): ReflectionResponse =>
      create(reflectionV1.ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        messageResponse,
      });
    const error = (code: Code, message: string) =>
      reply({
        case: 'errorResponse',
        value: create(reflectionV1.ErrorResponseSchema, {
          errorCode: code,
          errorMessage: message,
        }),
      });
    const files = (file: DescFile | undefined, what: string) =>
      file
        ? reply({
            case: 'fileDescriptorResponse',
            value: create(reflectionV1.FileDescriptorResponseSchema, {
              fileDescriptorProto: this.withDependencies(file).map((f) => this.encode(f)),
            }),
          })
        : error(Code.NotFound, `${what} not found`);
    const req = request.messageRequest;
    switch (req.case) {
      case 'listServices':
        return reply({
          case: 'listServicesResponse',
          value: create(reflectionV1.ListServiceResponseSchema, {
            service: this.services.map((name) => ({ name })),
          }),
        });
      case 'fileByFilename':
        return files(this.files.get(req.value), `file ${req.value}`);
      case 'fileContainingSymbol':
        return files(this.symbols.get(req.value.replace(/^\./, '')), `symbol ${req.value}`);
      case 'fileContainingExtension':
        return error(
          Code.NotFound,
          `extension ${req.value.extensionNumber} of ${req.value.containingType} not found`,
        );
      case 'allExtensionNumbersOfType':
        return error(Code.Unimplemented, 'extension numbers are not served');
      case undefined:
        return error(Code.InvalidArgument, 'no message_request set');
    }
  }

  /** The file first, then every file it imports, transitively, each once. */
  private withDependencies(root: DescFile): DescFile[] {
    const seen = new Set<string>();
    const out: DescFile[] = [];
    const walk = (file: DescFile): void => {
      if (seen.has(file.proto.name)) {
        return;
      }
      seen.add(file.proto.name);
      out.push(file);
      file.dependencies.forEach(walk);
    };
    walk(root);
    return out;
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}

/** Registers ServerReflectionInfo (v1 and v1alpha) on a router, answering from `index`. */
export function registerReflection(router: ConnectRouter, index: ServerReflectionIndex): void {
  router.service(reflectionV1.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        yield index.answer(request);
      }
    },
  });
  // v1alpha has the same messages and field numbers; convert through the wire format.
  router.service(reflectionV1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const alpha of requests) {
        const request = fromBinary(
          reflectionV1.ServerReflectionRequestSchema,
          toBinary(reflectionV1alpha.ServerReflectionRequestSchema, alpha),
        );
        yield fromBinary(
          reflectionV1alpha.ServerReflectionResponseSchema,
          toBinary(reflectionV1.ServerReflectionResponseSchema, index.answer(request)),
        );
      }
    },
  });
}
