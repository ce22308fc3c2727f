"""Admission: AdmissionReview plumbing and the rules both webhooks apply (attachments, Subnet fit,
the validating rules)."""
