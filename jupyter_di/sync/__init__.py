"""jupyter_di.sync"""
