"""Pictures every generator shares: text fitting and the contact sheet."""
