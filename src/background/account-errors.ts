/** What can go wrong when a page request reaches for an account; page-requests.ts turns each into a Matrix error. */

/** The account cannot do encryption; the popup says why and what to do. */
export class AccountUnusableError extends Error {}

/**
 * A site tried to use an account that another site logged in, without the user's consent:
 * it gets nothing (no decryption, no encryption) until the user allows it in the popup.
 */
export class SiteNotBoundError extends Error {
  constructor(
    readonly origin: string,
    readonly userId: string,
  ) {
    super(`${userId} is used by another site in Kirjava; allow ${origin} for it in the Kirjava popup first`);
  }
}

/** A page reported a login the homeserver does not confirm: nothing is bound, nothing created. */
export class UnconfirmedLoginError extends Error {}
