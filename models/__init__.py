"""affetto.models"""
