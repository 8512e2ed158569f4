# webrick.rb — WEBrick for the server matrix: GET /big answers the file named on
# the command line, anything else "hi\n"; keep-alive held for a minute.
require 'webrick'
port, big_path = ARGV
big = File.binread(big_path)
server = WEBrick::HTTPServer.new(BindAddress: '127.0.0.1', Port: port.to_i,
                                 KeepAliveTimeout: 60, AccessLog: [])
server.mount_proc('/') do |req, res|
  res['Content-Type'] = 'text/plain'
  res.body = req.path == '/big' ? big : "hi\n"
end
trap('TERM') { server.shutdown }
server.start
