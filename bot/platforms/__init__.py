"""Platform adapters: each turns one chat platform's wire format into `Inbound` and `Reply` back."""
