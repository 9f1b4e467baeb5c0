/**
 * Where an egress request may go: the connection's hosts, compared exactly, and only public
 * addresses unless the connection allows a non-public range. The address checked is the
 * address connected to, so a DNS answer cannot change between the check and the connection.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

import { Agent } from 'undici';

import type { Connection } from '../../model/policy.js';

export type AddressRange = 'public' | 'loopback' | 'private' | 'link_local' | 'reserved';

/** A refused destination, with a stable reason code. */
export class DestinationError extends Error {
  readonly reason: 'host_not_allowed' | 'address_not_allowed' | 'host_not_found';

  constructor(reason: DestinationError['reason'], message: string) {
    super(message);
    this.name = 'DestinationError';
    this.reason = reason;
  }
}

const RANGES: Array<[Exclude<AddressRange, 'public'>, string, number, 'ipv4' | 'ipv6']> = [
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['loopback', '::1', 128, 'ipv6'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  // Carrier-grade NAT space, where some clouds put their metadata service (100.100.100.200).
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['private', 'fc00::', 7, 'ipv6'],
  // 169.254.169.254, the usual cloud metadata address, is in this range.
  ['link_local', '169.254.0.0', 16, 'ipv4'],
  ['link_local', 'fe80::', 10, 'ipv6'],
  ['reserved', '0.0.0.0', 8, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'],
  ['reserved', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['reserved', '::', 128, 'ipv6'],
  ['reserved', 'ff00::', 8, 'ipv6'],
  // NAT64 (RFC 6052, RFC 8215) and 6to4 prefixes embed IPv4 addresses that this check would
  // not see.
  ['reserved', '64:ff9b::', 96, 'ipv6'],
  ['reserved', '64:ff9b:1::', 48, 'ipv6'],
  ['reserved', '2002::', 16, 'ipv6'],
];

const BLOCKS = new Map<Exclude<AddressRange, 'public'>, BlockList>();
for (const [range, network, prefix, family] of RANGES) {
  const list = BLOCKS.get(range) ?? new BlockList();
  list.addSubnet(network, prefix, family);
  BLOCKS.set(range, list);
}

/** Classifies an IP address. IPv4-mapped IPv6 addresses are classified as their IPv4 address. */
export function classifyAddress(address: string): AddressRange {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const family = isIP(ip) === 6 ? 'ipv6' : 'ipv4';
  for (const [range, list] of BLOCKS) {
    if (list.check(ip, family)) return range;
  }
  return 'public';
}

/** Tests whether the connection may reach an address of this range. Reserved ranges are never reachable. */
export function isAddressAllowed(connection: Connection, range: AddressRange): boolean {
  if (range === 'public') return true;
  if (range === 'reserved') return false;
  return connection.allow_addresses.includes(range);
}

/** Host name and port of a URL as the connection's `hosts` list spells them. */
export function hostKey(url: URL): string {
  const defaultPort = url.protocol === 'https:' ? '443' : '80';
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = url.port === '' ? defaultPort : url.port;
  return `${hostname}:${port}`;
}

/**
 * Tests whether `url`'s host is one of the connection's hosts. Entries without a port match the
 * scheme's default port only. Comparison is exact: no suffix, prefix or wildcard matching.
 */
export function isHostAllowed(connection: Connection, url: URL): boolean {
  const key = hostKey(url);
  const defaultPort = url.protocol === 'https:' ? '443' : '80';
  return connection.hosts.some((host) => {
    // An entry is read as a URL would read it, so `[::ffff:127.0.0.1]` matches the target
    // `[::ffff:7f00:1]` that URL parsing makes of it.
    let entry: URL;
    try {
      entry = new URL(`${url.protocol}//${host}`);
    } catch {
      return false;
    }
    const port = entry.port === '' ? defaultPort : entry.port;
    return `${entry.hostname.replace(/^\[(.*)\]$/, '$1')}:${port}` === key;
  });
}

/**
 * Resolves `hostname` and checks every address. Returns the first address, to connect to it
 * and nowhere else. Throws a DestinationError when the name does not resolve or any of its
 * addresses is in a range the connection may not reach.
 */
export async function resolveDestination(
  connection: Connection,
  hostname: string,
): Promise<{ address: string; family: 4 | 6 }> {
  const bare = hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: Array<{ address: string; family: number }>;
  if (isIP(bare) !== 0) {
    addresses = [{ address: bare, family: isIP(bare) }];
  } else {
    try {
      addresses = await lookup(bare, { all: true, verbatim: true });
    } catch {
      throw new DestinationError('host_not_found', `host ${bare} could not be resolved`);
    }
  }
  if (addresses.length === 0) {
    throw new DestinationError('host_not_found', `host ${bare} could not be resolved`);
  }
  for (const { address } of addresses) {
    const range = classifyAddress(address);
    if (!isAddressAllowed(connection, range)) {
      throw new DestinationError(
        'address_not_allowed',
        `host ${bare} resolves to a ${range.replace('_', '-')} address, which connection ` +
          `${connection.id} may not reach` +
          (range === 'reserved'
            ? '; reserved addresses are never reachable'
            : '; list the range under allow_addresses to allow it'),
      );
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

/**
 * Checks the Streamable HTTP URL of an MCP connection: http or https, a listed host when
 * hosts are given, and an allowed address.
 */
export async function checkUpstreamUrl(connection: Connection): Promise<URL> {
  const url = new URL(connection.url!);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new DestinationError(
      'host_not_allowed',
      `connection ${connection.id}: url must be http or https`,
    );
  }
  if (connection.hosts.length > 0 && !isHostAllowed(connection, url)) {
    throw new DestinationError(
      'host_not_allowed',
      `connection ${connection.id}: ${hostKey(url)} is not one of its hosts`,
    );
  }
  await resolveDestination(connection, url.hostname);
  return url;
}

/**
 * Creates an undici agent for one connection that connects only to checked addresses: every new
 * socket resolves the name again and checks the answer before connecting, so a DNS answer
 * that changes after an earlier check is never connected to. It follows no redirects.
 */
export function createCheckedAgent(connection: Connection): Agent {
  return new Agent({
    connect: {
      lookup: (hostname, options, callback) => {
        resolveDestination(connection, hostname).then(
          ({ address, family }) => {
            if ((options as { all?: boolean }).all) callback(null, [{ address, family }] as never);
            else callback(null, address, family);
          },
          (error: Error) => callback(error as NodeJS.ErrnoException, '', 4),
        );
      },
    },
    maxRedirections: 0,
  } as Agent.Options);
}
