def test_serve_answers_directory(serve):
    running = serve()
    response = running.get("/directory")
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
