/**
 * The send guard's declarativeNetRequest rules, built in one place from the settings and
 * the rooms known to be unencrypted. Plain data in, plain rules out (no chrome.* here),
 * so the rule shapes are unit-tested in Node.
 *
 * Fail closed: for each configured homeserver, every PUT/POST from an allowed site to
 * `/_matrix/client/<any prefix>/rooms/<anything>/send/` is blocked, in every context of
 * the site (page, iframes, Web Workers, its own Service Worker: they are all
 * `xmlhttprequest`), unless it is
 *  - an `m.room.encrypted` send (what Kirjava's hook sends, or an E2EE client's own), or
 *  - a send into a room the worker knows to be unencrypted.
 * Rooms Kirjava never saw, and URLs written in encodings nobody expected, stay blocked.
 */

export type Rule = chrome.declarativeNetRequest.Rule;

/** The client-server API versions under which the homeserver routes `/rooms/{id}/send`. */
const SEND_PREFIXES = '(?:r0|v3|v1|api/v1|unstable)';

const BLOCK_PRIORITY = 1;
const ALLOW_PRIORITY = 2;

/** Escapes a literal for RE2 (the regex syntax declarativeNetRequest uses). */
export const escapeRegex = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');

/**
 * A room id as a client may write it in a path: each character either as is or
 * percent-encoded (hex digits in either case). Chromium keeps escapes as the page wrote
 * them, so `!abc:example.org`, `%21abc%3Aexample.org` and `!abc%3aexample.org` all occur.
 */
/**
 * An allow rule (higher priority than the block rules) for sends whose URL matches
 * `regexFilter`, matched case-sensitively: event types and room ids are case-sensitive.
 */
function allowRule(
  common: chrome.declarativeNetRequest.RuleCondition,
  regexFilter: string,
): Omit<chrome.declarativeNetRequest.Rule, 'id'> {
  return {
    priority: ALLOW_PRIORITY,
    action: { type: 'allow' as chrome.declarativeNetRequest.RuleActionType },
    condition: { ...common, isUrlFilterCaseSensitive: true, regexFilter },
  };
}

export function roomIdPattern(roomId: string): string {
  let pattern = '';
  for (const char of roomId) {
    const encoded = encodeURIComponent(char);
    const literal = escapeRegex(char);
    if (char === '!' || encoded !== char) {
      const escapes = [...new TextEncoder().encode(char)]
        .map((byte) => {
          const hex = byte.toString(16).toUpperCase().padStart(2, '0');
          return `%${[...hex].map((digit) => (/[A-F]/.test(digit) ? `[${digit}${digit.toLowerCase()}]` : digit)).join('')}`;
        })
        .join('');
      pattern += `(?:${literal}|${escapes})`;
    } else {
      pattern += literal;
    }
  }
  return pattern;
}

export interface GuardInput {
  /** Configured homeserver base URLs (normalized, no trailing slash). */
  homeservers: string[];
  /** Allowed site origins; the guard applies to requests these sites start. */
  allowedSites: string[];
  /** Per homeserver, rooms known to be unencrypted, most recently used last. */
  plainRooms: Map<string, string[]>;
  /**
   * Tabs whose top-level page is on an allowed site: a sandboxed iframe or data: document
   * there has an opaque origin that `initiatorDomains` cannot match, so these tabs get
   * block rules of their own.
   */
  tabIds: number[];
  /** The extension's own id: its requests are never blocked. */
  extensionId: string;
  /** How many regex rules the guard may use in all (see README, "Send guard limits"). */
  regexBudget: number;
}

export interface GuardRules {
  rules: Rule[];
  /** Per homeserver, the unencrypted rooms that got an allow rule. */
  plainRoomsAllowed: Map<string, Set<string>>;
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

/** Every rule of the send guard; ids are 1..n in a stable order. */
export function buildGuardRules(input: GuardInput): GuardRules {
  const initiators = [...new Set(input.allowedSites.map(hostOf).filter((h): h is string => !!h))];
  if (initiators.length === 0 || input.homeservers.length === 0) return { rules: [], plainRoomsAllowed: new Map(), plainRoomsLeftOut: 0 };
  const rules: Omit<Rule, 'id'>[] = [];
  const common = {
    requestMethods: ['put', 'post'] as chrome.declarativeNetRequest.RequestMethod[],
    // xmlhttprequest: fetch and XHR from every context; ping: navigator.sendBeacon, which
    // can carry the token in the query string; other: whatever Chromium files nowhere else.
    resourceTypes: ['xmlhttprequest', 'ping', 'other'] as chrome.declarativeNetRequest.ResourceType[],
    excludedInitiatorDomains: [input.extensionId],
  };
  // Allow rules need no initiator condition: they only matter where a block rule matched.
  let regexLeft = input.regexBudget;
  for (const base of input.homeservers) {
    // urlFilter, not a regex: case-insensitive, and `*` also spans odd encodings and
    // extra segments, so it blocks more than the homeserver would route. Fail closed.
    const urlFilter = `|${base}/_matrix/client/*/rooms/*/send/`;
    const block = { type: 'block' as chrome.declarativeNetRequest.RuleActionType };
    rules.push({ priority: BLOCK_PRIORITY, action: block, condition: { ...common, urlFilter, initiatorDomains: initiators } });
    if (input.tabIds.length > 0) {
      rules.push({ priority: BLOCK_PRIORITY, action: block, condition: { ...common, urlFilter, tabIds: input.tabIds } });
    }
    // Case-sensitive: `M.ROOM.ENCRYPTED` is another event type, and the homeserver would store
    // its plaintext content. No `?` before the type, so a query string cannot smuggle it in.
    rules.push(allowRule(common, `^${escapeRegex(base)}/_matrix/client/${SEND_PREFIXES}/rooms/[^/?#]*/send/m\\.room\\.encrypted(?:/[^/?#]*)?(?:\\?.*)?$`));
    regexLeft -= 1;
  }
  let plainRoomsLeftOut = 0;
  const plainRoomsAllowed = new Map<string, Set<string>>();
  for (const base of input.homeservers) {
    const rooms = input.plainRooms.get(base) ?? [];
    // The most recently used rooms get the rules when there are more rooms than budget.
    const kept = rooms.slice(Math.max(0, rooms.length - Math.max(0, regexLeft)));
    plainRoomsLeftOut += rooms.length - kept.length;
    regexLeft -= kept.length;
    plainRoomsAllowed.set(base, new Set(kept));
    for (const roomId of kept) {
      // Room ids are case-sensitive: !abc and !ABC are different rooms.
      rules.push(allowRule(common, `^${escapeRegex(base)}/_matrix/client/${SEND_PREFIXES}/rooms/${roomIdPattern(roomId)}/send/`));
    }
  }
  return { rules: rules.map((rule, index) => ({ ...rule, id: index + 1 })), plainRoomsAllowed, plainRoomsLeftOut };
}
