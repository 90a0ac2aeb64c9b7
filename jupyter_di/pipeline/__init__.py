"""jupyter_di.pipeline"""
