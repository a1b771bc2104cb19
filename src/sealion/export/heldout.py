"""Built-in held-out text, one short paragraph per language, for quantisation fidelity (written for sealion;
everyday encyclopedic prose, not taken from any evaluation set)."""

HELDOUT = {
    "en": ("Rice has been grown in Southeast Asia for thousands of years. Farmers flood the fields during the "
           "rainy season and plant young seedlings by hand, then drain the water before the harvest. Today the "
           "region exports rice to many countries, and a bowl of rice is still part of almost every family meal."),
    "id": ("Indonesia adalah negara kepulauan terbesar di dunia dengan lebih dari tujuh belas ribu pulau. "
           "Penduduknya berbicara ratusan bahasa daerah, tetapi bahasa Indonesia digunakan di sekolah, kantor, "
           "dan media. Setiap tahun banyak wisatawan datang untuk melihat gunung berapi, pantai, dan candi kuno."),
    "th": ("ประเทศไทยมีชื่อเสียงด้านอาหารที่มีรสชาติหลากหลาย ทั้งเปรี้ยว หวาน เค็ม และเผ็ด "
           "ตลาดนัดในเมืองใหญ่มักเปิดตั้งแต่เช้าตรู่ และผู้คนนิยมซื้อผักผลไม้สดกลับไปทำอาหารที่บ้าน "
           "ในช่วงเทศกาลสงกรานต์ คนไทยจะรดน้ำขอพรผู้ใหญ่และเล่นน้ำกันอย่างสนุกสนาน"),
    "vi": ("Việt Nam có đường bờ biển dài hơn ba nghìn ki-lô-mét, trải dài từ Bắc vào Nam. Người dân ở các tỉnh "
           "ven biển sống bằng nghề đánh cá, làm muối và du lịch. Vào dịp Tết Nguyên Đán, các gia đình quây quần "
           "bên nhau, gói bánh chưng và chúc nhau một năm mới bình an."),
    "ta": ("தமிழ் உலகின் பழமையான மொழிகளில் ஒன்றாகும். இந்தியா, இலங்கை, சிங்கப்பூர், மலேசியா ஆகிய நாடுகளில் "
           "கோடிக்கணக்கான மக்கள் தமிழ் பேசுகிறார்கள். பொங்கல் பண்டிகையின் போது மக்கள் புதிய அரிசியில் பொங்கல் "
           "சமைத்து சூரியனுக்கு நன்றி செலுத்துகிறார்கள்."),
    "tl": ("Ang Pilipinas ay binubuo ng mahigit pitong libong pulo. Maraming pamilya ang nagtitipon tuwing "
           "Linggo upang kumain nang sabay-sabay at magkuwentuhan. Kapag may bagyo, nagtutulungan ang mga "
           "magkakapitbahay upang ayusin ang mga bahay at linisin ang mga kalsada."),
    "ms": ("Malaysia terkenal dengan hutan hujan tropika yang menjadi habitat pelbagai jenis haiwan dan tumbuhan. "
           "Di bandar-bandar besar, orang ramai suka bersarapan dengan nasi lemak dan teh tarik. Sekolah-sekolah "
           "mengajar bahasa Melayu, bahasa Inggeris dan beberapa bahasa lain kepada murid-murid."),
    "my": ("မြန်မာနိုင်ငံတွင် ဧရာဝတီမြစ်သည် အရှည်ဆုံးမြစ်ဖြစ်ပြီး လယ်သမားများအတွက် အလွန်အရေးကြီးသည်။ "
           "သင်္ကြန်ပွဲတော်အချိန်တွင် လူများသည် ရေပက်ကစားကြပြီး ဘုန်းကြီးကျောင်းများသို့ သွားရောက်ကြသည်။ "
           "ရန်ကုန်မြို့၏ ရွှေတိဂုံစေတီတော်ကို ကမ္ဘာတစ်ဝှမ်းမှ ဧည့်သည်များ လာရောက်ဖူးမြော်ကြသည်။"),
}

LANGUAGES = tuple(HELDOUT)
