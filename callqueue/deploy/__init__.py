"""The deployment: the infrastructure stack and the steps around `chalice deploy`."""
