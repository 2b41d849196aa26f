"""affetto.export"""
