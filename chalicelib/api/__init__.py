"""The REST API: the jobs routes and Twilio's status callback route."""
