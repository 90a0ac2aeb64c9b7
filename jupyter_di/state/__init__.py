"""jupyter_di.state"""
