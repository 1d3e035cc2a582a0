"""The thin Airflow layer: each operator turns task arguments and connections into one core call."""
