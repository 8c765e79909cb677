"""risk_management"""
