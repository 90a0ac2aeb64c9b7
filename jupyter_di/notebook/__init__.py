"""jupyter_di.notebook"""
