"""Internal subscribers: police systems that receive inbound messages by webhook."""
