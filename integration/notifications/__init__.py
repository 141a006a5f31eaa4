"""Notifications: what people are told (notices, banners, e-mail) and the problems list."""
