/**
 * The send guard's declarativeNetRequest rules, built in one place from the settings and
 * the rooms known to be unencrypted. Plain data in, plain rules out (no extension API here),
 * so the rule shapes are unit-tested in Node.
 *
 * Fail closed: every PUT/POST to `/_matrix/client/<any prefix>/rooms/<anything>/send/`
 * started by an allowed site is blocked, in every context of the site (page, iframes,
 * Web Workers, its own Service Worker, form posts, navigations, beacons) and on every
 * host: the homeserver the user configured is reachable under other names too
 * (`localhost`, an IPv4-mapped IPv6 address, a CNAME, its .well-known name), so the rules
 * never name a host. A send passes only when it is
 *  - an `m.room.encrypted` send (what Kirjava's hook sends, or an E2EE client's own), or
 *  - a send into a room the worker knows to be unencrypted (room ids are global: the same
 *    id names the same room on every homeserver, under every host name).
 * Rooms Kirjava never saw, and URLs written in encodings nobody expected, stay blocked.
 */

import type { BrowserKind, DeclarativeNetRequest } from '../platform/ext.ts';

/**
 * One declarativeNetRequest rule, as the browser takes it, in the polyfill's types (Firefox's:
 * Chromium's own resource types are cast into them below).
 */
export type Rule = DeclarativeNetRequest.Rule;
type ResourceType = DeclarativeNetRequest.ResourceType;

/** The resource types both browsers know. */
const COMMON_RESOURCE_TYPES = [
  'main_frame',
  'sub_frame',
  'stylesheet',
  'script',
  'image',
  'font',
  'object',
  'xmlhttprequest',
  'ping',
  'csp_report',
  'media',
  'websocket',
  'other',
];

/**
 * Every resource type each browser knows, and takes in a rule (a rule naming a type the
 * browser lacks is refused, and with it the whole guard). A plaintext event can leave as a
 * fetch or XHR (`xmlhttprequest`), a form post into a frame or a tab (`sub_frame`,
 * `main_frame`), `<a ping>` (`ping`, carrying the token in the query string), a beacon, and
 * through whatever else a page can make POST. Chromium files `navigator.sendBeacon` under
 * `ping` and refuses `beacon`; Firefox files it under `beacon`, has a few types of its own,
 * and refuses `webtransport` and `webbundle` ("Invalid enumeration value", Firefox 153).
 */
export const GUARDED_RESOURCE_TYPES: Record<BrowserKind, readonly ResourceType[]> = {
  chromium: [...COMMON_RESOURCE_TYPES, 'webtransport', 'webbundle'] as ResourceType[],
  firefox: [
    ...COMMON_RESOURCE_TYPES,
    'beacon',
    'object_subrequest',
    'xslt',
    'xml_dtd',
    'imageset',
    'web_manifest',
    'json',
    'speculative',
  ] as ResourceType[],
};

/** The client-server API versions under which the homeserver routes `/rooms/{id}/send`. */
const SEND_PREFIXES = '(?:r0|v3|v1|api/v1|unstable)';

/**
 * Any scheme, host and base path before the `/_matrix/` of a send. `[^?#]*` keeps the
 * match in the path, so a query string cannot hold what an allow rule looks for. The
 * homeserver routes a send only when its whole path (below the base path) is
 * `/_matrix/client/<prefix>/rooms/<id>/send/<type>[/<txn>]`, single segments that hold no
 * further `/_matrix/client/`: the part an allow rule matches is the part it routes.
 */
const ANY_BASE = '^[^?#]*';

const BLOCK_PRIORITY = 1;
const ALLOW_PRIORITY = 2;

/** Escapes a literal for RE2 (the regex syntax declarativeNetRequest uses). */
export const escapeRegex = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/** A hex digit of a percent escape in either case: `A` → `[Aa]`; a decimal digit as is. */
const eitherCase = (digit: string): string => (/[A-F]/.test(digit) ? `[${digit}${digit.toLowerCase()}]` : digit);

/**
 * A room id as a client may write it in a path: each character either as is or
 * percent-encoded (hex digits in either case). Chromium keeps escapes as the page wrote
 * them, so `!abc:example.org`, `%21abc%3Aexample.org` and `!abc%3aexample.org` all occur.
 */
export function roomIdPattern(roomId: string): string {
  let pattern = '';
  for (const char of roomId) {
    const encoded = encodeURIComponent(char);
    const literal = escapeRegex(char);
    if (char === '!' || encoded !== char) {
      const escapes = [...new TextEncoder().encode(char)]
        .map((byte) => {
          const hex = byte.toString(16).toUpperCase().padStart(2, '0');
          return `%${[...hex].map(eitherCase).join('')}`;
        })
        .join('');
      pattern += `(?:${literal}|${escapes})`;
    } else {
      pattern += literal;
    }
  }
  return pattern;
}

/**
 * An allow rule (higher priority than the block rules) for sends whose URL matches
 * `regexFilter`, matched case-sensitively: event types and room ids are case-sensitive.
 */
function allowRule(common: DeclarativeNetRequest.RuleConditionType, regexFilter: string): Omit<Rule, 'id'> {
  return {
    priority: ALLOW_PRIORITY,
    action: { type: 'allow' },
    condition: { ...common, isUrlFilterCaseSensitive: true, regexFilter },
  };
}

/** What the guard's rules are built from: the settings, the known plain rooms and the guarded tabs. */
export interface GuardInput {
  /** Allowed site origins; the guard applies to requests these sites start. */
  allowedSites: string[];
  /** Rooms known to be unencrypted (by any account), each once, most recently used last. */
  plainRooms: string[];
  /**
   * Tabs whose top-level page is on an allowed site: a sandboxed iframe or data: document
   * there has an opaque origin that `initiatorDomains` cannot match, so these tabs get
   * block rules of their own.
   */
  tabIds: number[];
  /**
   * The host of the extension's own pages (Chromium: its id; Firefox: its per-profile UUID,
   * not the add-on id): its requests are never blocked.
   */
  extensionHost: string;
  /** The browser the rules are for: it decides the resource types (GUARDED_RESOURCE_TYPES). */
  browser: BrowserKind;
  /** How many regex rules the guard may use in all (see README, "Send guard limits"). */
  regexBudget: number;
}

/** The rules to install, and which plain rooms got an allow rule within the regex budget. */
export interface GuardRules {
  rules: Rule[];
  /** The unencrypted rooms that got an allow rule. */
  plainRoomsAllowed: Set<string>;
  /** Plain rooms left without an allow rule because the budget ran out. */
  plainRoomsLeftOut: number;
}

const hostOf = (origin: string): string | undefined => {
  try {
    return new URL(origin).hostname;
  } catch {
    return undefined;
  }
};

/**
 * The sends the block rules match, on any host: `urlFilter`, not a regex, so it costs no
 * regex rule, is case-insensitive, and its `*` also spans odd encodings, extra segments
 * and doubled slashes (which a proxy in front of the homeserver may merge), so it blocks
 * more than the homeserver would route. Fail closed.
 */
const SEND_URL_FILTER = '/_matrix/*client/*/rooms/*/send/';

/** Every rule of the send guard; ids are 1..n in a stable order. */
export function buildGuardRules(input: GuardInput): GuardRules {
  const initiators = [...new Set(input.allowedSites.map(hostOf).filter((h): h is string => !!h))];
  if (initiators.length === 0) return { rules: [], plainRoomsAllowed: new Set(), plainRoomsLeftOut: 0 };
  const rules: Omit<Rule, 'id'>[] = [];
  const common = {
    requestMethods: ['put', 'post'],
    resourceTypes: [...GUARDED_RESOURCE_TYPES[input.browser]],
    excludedInitiatorDomains: [input.extensionHost],
  };
  const block: DeclarativeNetRequest.RuleActionType = { type: 'block' };
  const urlFilter = SEND_URL_FILTER;
  rules.push({
    priority: BLOCK_PRIORITY,
    action: block,
    condition: { ...common, urlFilter, initiatorDomains: initiators },
  });
  if (input.tabIds.length > 0) {
    rules.push({ priority: BLOCK_PRIORITY, action: block, condition: { ...common, urlFilter, tabIds: input.tabIds } });
  }
  // Allow rules need no initiator condition: they only matter where a block rule matched.
  // Case-sensitive: `M.ROOM.ENCRYPTED` is another event type, and the homeserver would store
  // its plaintext content. No `?` before the type, so a query string cannot smuggle it in.
  rules.push(
    allowRule(
      common,
      `${ANY_BASE}/_matrix/client/${SEND_PREFIXES}/rooms/[^/?#]*/send/m\\.room\\.encrypted(?:/[^/?#]*)?(?:\\?.*)?$`,
    ),
  );
  const rooms = input.plainRooms;
  // The m.room.encrypted rule took one regex rule; the most recently used rooms get the
  // rest when there are more rooms than budget.
  const kept = rooms.slice(Math.max(0, rooms.length - Math.max(0, input.regexBudget - 1)));
  for (const roomId of kept) {
    // Room ids are case-sensitive: !abc and !ABC are different rooms.
    rules.push(allowRule(common, `${ANY_BASE}/_matrix/client/${SEND_PREFIXES}/rooms/${roomIdPattern(roomId)}/send/`));
  }
  return {
    rules: rules.map((rule, index) => ({ ...rule, id: index + 1 })),
    plainRoomsAllowed: new Set(kept),
    plainRoomsLeftOut: rooms.length - kept.length,
  };
}
