"""phase"""
