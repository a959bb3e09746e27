# acupdate.http: the HTTP/1.1 client the agent talks to the update server with.
