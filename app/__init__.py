"""tablerouter: routes questions to warehouse tables."""
