"""``strongroom detect``: from the audit stream to an alert a person acts on.

    source (socket | file | kafka) ─► chain check ─► event ─► rules ─► outbox (SQLite) ─► Slack / PagerDuty
                                          │                                 ▲
                                          └── gap, reorder, bad MAC ────────┘    enrichment: identity API, TTL cache

Guarantees:

- **Nobody removes audit lines silently.** Every line's place in its device's hash chain is checked as it arrives
  (``seq`` one more than the last, ``prev_hash`` the SHA-256 of the last line); a gap, a reordering or an edited line
  is itself a critical alert. MACs need the device key, which never leaves the server: with ``device`` set on a
  source (and a server configured), detect asks the server (``sys/audit-chain/<device>``, the same check as
  ``strongroom audit verify --device``) whether the newest line's MAC is one the device wrote, every
  ``mac_check_interval``; since each line's ``prev_hash`` commits to everything before it, one good MAC
  authenticates the whole stream up to it, and a bad one is an alert.
- **No alert is lost or sent twice across a restart.** An alert is written to the outbox (SQLite) under a key made
  from its rule, its subject and the dedupe window of the *event's* time before anything is sent; rule state and the
  source positions are saved together in one transaction, so a restart re-reads at most what followed the last save
  and re-derives the same keys (ignored by the outbox). A sender marks an alert sent after the receiver took it; a
  crash between the two re-sends it once, with the same ``dedup_key`` (PagerDuty folds it).
"""
