import { DomainException, type ErrorKind } from '../common/errors/domain.exception.js';

export enum InventoryErrorCode {
  INVALID_REQUEST = 'INVALID_REQUEST',
  /** No node has reported the VM (or the caller may not see it). */
  VM_NOT_FOUND = 'VM_NOT_FOUND',
  /** No node with that id ever reported. */
  NODE_NOT_FOUND = 'NODE_NOT_FOUND',
  /** Something else the request names (a project) does not exist. */
  NOT_FOUND = 'NOT_FOUND',
  /** The control plane's database does not answer. */
  STORE_UNAVAILABLE = 'STORE_UNAVAILABLE',
  /** NATS is not connected, so nothing live can be followed. */
  NODE_UNAVAILABLE = 'NODE_UNAVAILABLE',
}

const KINDS: Record<InventoryErrorCode, ErrorKind> = {
  [InventoryErrorCode.INVALID_REQUEST]: 'invalid',
  [InventoryErrorCode.VM_NOT_FOUND]: 'not_found',
  [InventoryErrorCode.NODE_NOT_FOUND]: 'not_found',
  [InventoryErrorCode.NOT_FOUND]: 'not_found',
  [InventoryErrorCode.STORE_UNAVAILABLE]: 'unavailable',
  [InventoryErrorCode.NODE_UNAVAILABLE]: 'unavailable',
};

/** A failed read or change of the inventory (VMs, nodes, their placement). */
export class InventoryException extends DomainException<InventoryErrorCode> {
  get kind(): ErrorKind {
    return KINDS[this.code];
  }

  static vmNotFound(vmId: string): InventoryException {
    return new InventoryException(
      InventoryErrorCode.VM_NOT_FOUND,
      `VM ${vmId} is not in the inventory`,
    );
  }

  static invalid(message: string): InventoryException {
    return new InventoryException(InventoryErrorCode.INVALID_REQUEST, message);
  }
}
