// aedes' memory persistence answers each SUBSCRIBE by testing the filter against *every* retained
// message (aedes-persistence 11, `retainedMessagesByPattern` in asyncPersistence.js). Each device has
// retained `desired`, `status` and `reported`, so one device's subscribe cost O(fleet) and a
// reconnect storm O(fleet²): 10,000 devices did not get back within 10 minutes. Device filters never
// hold wildcards (device-acl.ts), so an exact filter is answered from an index by topic; a filter with
// wildcards (the server's own client, once per start) keeps the scan.
import { Readable } from 'node:stream';
import persistenceModule, { type Packet } from 'aedes-persistence';

// The package is CommonJS (`module.exports = factory`) while its types declare an ES default export.
const memory = persistenceModule as unknown as typeof persistenceModule.default;

const hasWildcard = (filter: string) => filter.includes('+') || filter.includes('#');

/** aedes' default in-memory persistence, with retained messages also indexed by exact topic. */
export function memoryPersistenceWithRetainedIndex(): ReturnType<typeof memory> {
  const persistence = memory();
  const byTopic = new Map<string, Packet>();
  const store = persistence.storeRetained.bind(persistence);
  const scan = persistence.createRetainedStreamCombi.bind(persistence);
  persistence.storeRetained = (packet, cb) => {
    // Same rule and same shallow copy as the persistence itself: an empty payload clears the topic.
    const { topic, payload } = packet as Packet & { topic: string; payload: Buffer };
    if (payload.length === 0) byTopic.delete(topic);
    else byTopic.set(topic, Object.assign({}, packet));
    return store(packet, cb);
  };
  persistence.createRetainedStreamCombi = (filters) => {
    if (filters.some(hasWildcard)) return scan(filters);
    return Readable.from(filters.flatMap((f) => byTopic.get(f) ?? []));
  };
  return persistence;
}
