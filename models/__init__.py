"""The ledger (台账) and everything the bot must remember, as SQLModel tables.

This package imports nothing of the project's but itself.
"""

from models.tables import (  # noqa: F401
    AttachmentFile,
    CampaignRow,
    CheckRecord,
    GroupRow,
    GroupUnit,
    Hazard,
    HazardEvent,
    HazardStatus,
    InboundMessage,
    MilestoneRow,
    OutboxMessage,
    OutboxState,
    PendingPhoto,
    PersonRow,
    PhaseRow,
    Submission,
    UnitRow,
)
