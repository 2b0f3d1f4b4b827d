"""Durable state: the ledger (maintenance records, pauses, the call journal, the audit trail)
and the per-host state directory with its lock."""
