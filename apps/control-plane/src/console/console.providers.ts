import { InventoryService } from '../inventory/inventory.service.js';
import { ConsoleFiles } from './console-files.js';
import { ConsoleRepository } from './console.repository.js';
import { VmListFeed } from './vm-list.feed.js';

/** The web console's providers: where its files are, and the shared live VM list. */
export const CONSOLE_PROVIDERS = [
  { provide: ConsoleFiles, useFactory: () => new ConsoleFiles() },
  ConsoleRepository,
  {
    provide: VmListFeed,
    useFactory: (inventory: InventoryService, repo: ConsoleRepository) =>
      new VmListFeed({
        listVms: (projects) => inventory.listVms(projects),
        listNodes: () => inventory.listNodes(),
        connectedSince: (ids) => repo.connectedSince(ids),
      }),
    inject: [InventoryService, ConsoleRepository],
  },
];
