"""The site store: versioned weights per site, user and learning profile; names and archives."""
