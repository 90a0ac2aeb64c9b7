"""jupyter_di.integration"""
