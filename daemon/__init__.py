"""affetto.daemon"""
