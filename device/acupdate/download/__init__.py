# acupdate.download: what the agent fetches from the update server: the catalog, and an
# image (its request, its start, the transfer and its resume).
