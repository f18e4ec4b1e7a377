"""Operations: metrics declared once, the access log, memory and GC tuning."""
