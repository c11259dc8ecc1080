"""The campaign clock: reporting reminders, phase and milestone nudges, overdue and leader digests.

calendar  workdays (Chinese holidays via chinese-calendar, overrides) and quiet hours
plan      what pushes exist between two dates for a config (pure; `safetybot plan`)
messages  the Chinese texts, composed from SQL aggregates at send time
ticker    due-push rows: materialize, skip what was missed, claim and send exactly once
leader    one ticking process: PostgreSQL advisory lock or a file lock
runner    APScheduler 3.11 wakes the tick every minute inside the app
alerts    重大 hazard alerts queued by the report handler
escalation the overdue ladder and 督办 check cadence (pure; shared by plan and messages)
"""
